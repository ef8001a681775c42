"""``serving.predict`` on a charlm run: the generation flags, which ``keras_rnn.generate``
shares, and the text generated after ``--prefix``."""

from __future__ import annotations

import argparse
import sys

from serving import cli
from serving.runtime.charlm import GENERATION_DEFAULTS, onnx_generate
from serving.runtime.decoding import Sampling
from serving.runtime.graph import ExportedGraph
from serving.runtime.vocab import Vocabulary, unknown_note

TITLE = "charlm runs (the same flags and text as keras_rnn.generate)"
TAKES_TEXTS = False


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


def fill_generation_defaults(args: argparse.Namespace) -> None:
    """Set each generation flag that was not given (None) to its default."""
    for name, value in GENERATION_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def sampling_flags(args: argparse.Namespace) -> Sampling:
    """The generation flags as one ``Sampling``."""
    return Sampling(args.length, args.temperature, args.top_k, args.seed)


def add_arguments(group: cli.FlagGroup) -> None:
    """The generation flags, each None when not given (``predict`` fills the defaults)."""
    add_generation_flags(group, defaults=False)


def predict(graph: ExportedGraph, args: argparse.Namespace) -> tuple[dict, str]:
    """Text generated from ``--prefix`` with the exported ``lm_step`` graph; prefix
    characters outside the vocabulary are noted on stderr."""
    fill_generation_defaults(args)
    vocab = Vocabulary.load(graph.export_dir / graph.runtime["vocab"])
    text, unknown = onnx_generate(graph, vocab, args.prefix or "", sampling_flags(args))
    return generated(args.prefix, text, unknown)


def generated(prefix: str, text: str, unknown: list[str]) -> tuple[dict, str]:
    """What ``predict`` gives for the ``text`` generated after ``prefix``: the JSON-able
    result, and the prefix with its continuation; its ``unknown`` characters are noted on
    stderr."""
    if unknown:
        print(unknown_note(unknown), file=sys.stderr)
    return {"prefix": prefix, "generated": text, "unknown": unknown}, prefix + text


remote_predict = predict  # calls of the graph only, which a RemoteGraph answers alike
