"""Character language models: sampling and generation, shared by the Keras path
(``python -m keras_rnn.generate``) and the onnxruntime path (``serving.predict``). Both run
the same loop over a step function, so the same seed gives the same text. The vocabulary is
in ``serving.runtime.vocab``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import numpy as np

from serving import cli
from serving.errors import UserError
from serving.runtime.graph import ExportedGraph
from serving.runtime.vocab import PAD, UNKNOWN, Vocabulary, unknown_note

MAX_GENERATED = 100_000  # characters one call may generate


def sample_next(
    logits: np.ndarray, temperature: float, top_k: int, rng: np.random.Generator
) -> int:
    """The next id from one row of logits: the most likely one when ``temperature`` is 0,
    else a draw from softmax(logits / temperature) over the ``top_k`` most likely (0: all).
    Reserved ids are never produced."""
    scores = np.asarray(logits, np.float64).copy()
    scores[[PAD, UNKNOWN]] = -np.inf
    if temperature == 0:
        return int(np.argmax(scores))
    if top_k:
        scores[np.argsort(scores)[: -top_k or None]] = -np.inf
    scores = (scores - scores.max()) / temperature
    probabilities = np.exp(scores)
    return int(rng.choice(len(scores), p=probabilities / probabilities.sum()))


GENERATION_DEFAULTS = {"length": 200, "temperature": 0.5, "top_k": 0, "seed": 0}


def add_generation_flags(parser, defaults: bool = True) -> None:
    """The generation flags of ``keras_rnn.generate`` and ``serving.predict``. With
    ``defaults=False`` a flag not given stays None, so a caller can tell which were typed;
    ``fill_generation_defaults`` then sets the rest."""
    default = GENERATION_DEFAULTS if defaults else dict.fromkeys(GENERATION_DEFAULTS)
    parser.add_argument("--prefix", help="text to continue")
    parser.add_argument(
        "--length",
        type=int,
        default=default["length"],
        help="characters to generate (default: 200)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=default["temperature"],
        help="sampling temperature, 0: greedy (default: 0.5)",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=default["top_k"],
        help="sample among the K most likely (default: 0, all)",
    )
    parser.add_argument(
        "--seed",
        type=cli.non_negative_int,
        default=default["seed"],
        help="sampling seed (default: 0)",
    )


def fill_generation_defaults(args) -> None:
    """Set each generation flag that was not given (None) to its default."""
    for name, value in GENERATION_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


# step(token ids (1, 1), states) -> (logits (1, vocab), new states)
Step = Callable[[np.ndarray, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]


def check_generation(
    prefix: str, length: int, temperature: float, top_k: int, vocab_size: int
) -> None:
    if not prefix:
        raise UserError("--prefix is empty: give at least one character to start from")
    if len(prefix) > MAX_GENERATED:
        raise UserError(f"--prefix has {len(prefix)} characters: at most {MAX_GENERATED}")
    if not 0 <= length <= MAX_GENERATED:
        raise UserError(f"--length must be in [0, {MAX_GENERATED}], got {length}")
    if not (np.isfinite(temperature) and temperature >= 0):
        raise UserError(f"--temperature must be >= 0, got {temperature}")
    if not 0 <= top_k <= vocab_size:
        raise UserError(f"--top-k must be in [0, {vocab_size}] (0: all), got {top_k}")


def generate(
    step: Step,
    states: list[np.ndarray],
    prefix_ids: np.ndarray,
    length: int,
    temperature: float,
    top_k: int,
    seed: int,
) -> list[int]:
    """Feed the prefix one id at a time, then ``length`` sampled ids, each fed back."""
    rng = np.random.default_rng(seed)
    logits = None
    for token in prefix_ids:
        logits, states = step(np.array([[token]], np.int32), states)
    generated = []
    for _ in range(length):
        token = sample_next(logits[0], temperature, top_k, rng)
        generated.append(token)
        logits, states = step(np.array([[token]], np.int32), states)
    return generated


def onnx_step(graph: ExportedGraph) -> Step:
    """The exported ``lm_step`` graph as the generation loop calls it."""
    names = graph.runtime["states"]

    def run(token: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        outputs = graph(character=token, **dict(zip(names, states, strict=True)))
        return outputs["logits"], [outputs[f"next_{name}"] for name in names]

    return run


def onnx_generate(
    graph: ExportedGraph,
    vocab: Vocabulary,
    prefix: str,
    length: int,
    temperature: float,
    top_k: int,
    seed: int,
) -> tuple[str, list[str]]:
    """Text generated after ``prefix`` by onnxruntime, and the prefix's unknown characters."""
    states = len(graph.runtime["states"])
    return generate_text(
        onnx_step(graph), states, graph.runtime["units"], vocab, prefix, length, temperature,
        top_k, seed,
    )  # fmt: skip


def generate_text(
    step: Step,
    states: int,
    units: int,
    vocab: Vocabulary,
    prefix: str,
    length: int,
    temperature: float,
    top_k: int,
    seed: int,
) -> tuple[str, list[str]]:
    """Text that ``step`` (with ``states`` state tensors of ``units``, starting at zeros)
    generates after ``prefix``, and the prefix's unknown characters."""
    check_generation(prefix, length, temperature, top_k, vocab.size)
    prefix_ids, unknown = vocab.encode(prefix)
    zeros = [np.zeros((1, units), np.float32) for _ in range(states)]
    ids = generate(step, zeros, prefix_ids, length, temperature, top_k, seed)
    return vocab.decode(ids), unknown


# python -m serving.predict on a charlm run (serving/predict.py dispatches on the task).
TITLE = "charlm runs (the same flags and text as keras_rnn.generate)"


def add_arguments(group: argparse._ArgumentGroup) -> None:
    """The flags of ``predict``; each stays None when not given (``predict`` fills defaults)."""
    add_generation_flags(group, defaults=False)


def predict(graph: ExportedGraph, args: argparse.Namespace) -> tuple[dict, str]:
    """Text generated from ``--prefix`` with the exported ``lm_step`` graph."""
    fill_generation_defaults(args)
    vocab = Vocabulary.load(graph.export_dir / graph.runtime["vocab"])
    text, unknown = onnx_generate(
        graph, vocab, args.prefix or "", args.length, args.temperature, args.top_k, args.seed
    )
    if unknown:
        print(unknown_note(unknown), file=sys.stderr)
    return {"prefix": args.prefix, "generated": text, "unknown": unknown}, args.prefix + text
