"""Character language models: generation, shared by the Keras path
(``python -m keras_rnn.generate``) and the onnxruntime path (``serving.predict``). Both run
the loop of ``serving.runtime.decoding`` over their own step function, so the same seed gives
the same text. The vocabulary is in ``serving.runtime.vocab``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import asdict

import numpy as np

from serving import cli
from serving.errors import UserError
from serving.runtime.decoding import MAX_GENERATED, Sampling, Step, stream_ids
from serving.runtime.graph import ExportedGraph
from serving.runtime.vocab import Vocabulary, unknown_note

GENERATION_DEFAULTS = asdict(Sampling())


def add_generation_flags(parser: cli.FlagGroup, defaults: bool = True) -> None:
    """The generation flags of ``keras_rnn.generate`` and ``serving.predict``. With
    ``defaults=False`` a flag not given stays None, so a caller can tell which were typed;
    ``fill_generation_defaults`` then sets the rest."""
    default = GENERATION_DEFAULTS if defaults else dict.fromkeys(GENERATION_DEFAULTS)
    parser.add_argument("--prefix", help="text to continue")
    parser.add_argument(
        "--length",
        type=int,
        default=default["length"],
        help=f"characters to generate (default: {GENERATION_DEFAULTS['length']})",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=default["temperature"],
        help=f"sampling temperature, 0: greedy (default: {GENERATION_DEFAULTS['temperature']})",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=default["top_k"],
        help=f"sample among the K most likely, 0: all (default: {GENERATION_DEFAULTS['top_k']})",
    )
    parser.add_argument(
        "--seed",
        type=cli.non_negative_int,
        default=default["seed"],
        help=f"sampling seed (default: {GENERATION_DEFAULTS['seed']})",
    )


def fill_generation_defaults(args) -> None:
    """Set each generation flag that was not given (None) to its default."""
    for name, value in GENERATION_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def sampling_flags(args: argparse.Namespace) -> Sampling:
    """The generation flags as one ``Sampling``."""
    return Sampling(args.length, args.temperature, args.top_k, args.seed)


def check_generation(prefix: str, settings: Sampling, vocab_size: int) -> None:
    """Raise UserError, naming the flag, for an empty or long prefix or a bad setting."""
    if not prefix:
        raise UserError("--prefix is empty: give at least one character to start from")
    if len(prefix) > MAX_GENERATED:
        raise UserError(f"--prefix has {len(prefix)} characters: at most {MAX_GENERATED}")
    settings.check(vocab_size)


def onnx_step(graph: ExportedGraph) -> Step:
    """The exported ``lm_step`` graph as the generation loop calls it."""
    names = graph.runtime["states"]

    def run(token: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        outputs = graph(character=token, **dict(zip(names, states, strict=True)))
        return outputs["logits"], [outputs[f"next_{name}"] for name in names]

    return run


def onnx_generate(
    graph: ExportedGraph, vocab: Vocabulary, prefix: str, settings: Sampling
) -> tuple[str, list[str]]:
    """Text generated after ``prefix`` by onnxruntime, and the prefix's unknown characters."""
    pieces, unknown = onnx_stream(graph, vocab, prefix, settings)
    return "".join(pieces), unknown


def onnx_stream(
    graph: ExportedGraph, vocab: Vocabulary, prefix: str, settings: Sampling
) -> tuple[Iterator[str], list[str]]:
    """``stream_text`` with the exported ``lm_step`` graph."""
    states = len(graph.runtime["states"])
    return stream_text(onnx_step(graph), states, graph.runtime["units"], vocab, prefix, settings)


def generate_text(
    step: Step, states: int, units: int, vocab: Vocabulary, prefix: str, settings: Sampling
) -> tuple[str, list[str]]:
    """Text that ``step`` (with ``states`` state tensors of ``units``, starting at zeros)
    generates after ``prefix``, and the prefix's unknown characters."""
    pieces, unknown = stream_text(step, states, units, vocab, prefix, settings)
    return "".join(pieces), unknown


def stream_text(
    step: Step, states: int, units: int, vocab: Vocabulary, prefix: str, settings: Sampling
) -> tuple[Iterator[str], list[str]]:
    """``generate_text``'s characters one at a time as each is sampled, and the prefix's
    unknown characters. The prefix and settings are checked before this returns."""
    check_generation(prefix, settings, vocab.size)
    prefix_ids, unknown = vocab.encode(prefix)
    zeros = [np.zeros((1, units), np.float32) for _ in range(states)]
    ids = stream_ids(step, zeros, prefix_ids, settings)
    return (vocab.decode([token]) for token in ids), unknown


# python -m serving.predict on a charlm run (serving/predict.py dispatches on the task).
TITLE = "charlm runs (the same flags and text as keras_rnn.generate)"


def add_arguments(group: cli.FlagGroup) -> None:
    """The flags of ``predict``; each stays None when not given (``predict`` fills defaults)."""
    add_generation_flags(group, defaults=False)


def predict(graph: ExportedGraph, args: argparse.Namespace) -> tuple[dict, str]:
    """Text generated from ``--prefix`` with the exported ``lm_step`` graph."""
    fill_generation_defaults(args)
    vocab = Vocabulary.load(graph.export_dir / graph.runtime["vocab"])
    text, unknown = onnx_generate(graph, vocab, args.prefix or "", sampling_flags(args))
    if unknown:
        print(unknown_note(unknown), file=sys.stderr)
    return {"prefix": args.prefix, "generated": text, "unknown": unknown}, args.prefix + text
