"""``serving.predict`` on a translate run: the positional texts, translated greedily or with
``--beam``; through a server, by its ``translate`` model (strings in and out) where it has one."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from serving import cli
from serving.clients.remote import RemoteGraph
from serving.clients.translate import STRING_GRAPH, remote_translator, translate_strings
from serving.errors import UserError
from serving.runtime.graph import ExportedGraph
from serving.runtime.translate import (
    Translation,
    as_json,
    check_beam_flags,
    onnx_translator,
    translate_texts,
    unknown_tokens,
)
from serving.runtime.vocab import unknown_note

TITLE = "translate runs (the texts to translate are the positional arguments)"
TAKES_TEXTS = True


def add_arguments(group: cli.FlagGroup) -> None:
    """``--beam`` and ``--length-penalty``; each stays None when not given."""
    group.add_argument(
        "--beam", type=cli.non_negative_int, help="beam width (default: 0, greedy decoding)"
    )
    group.add_argument(
        "--length-penalty",
        type=float,
        help="beam search ranks by log-probability / length**LENGTH_PENALTY (default: 1)",
    )


def predict(graph: ExportedGraph, args: argparse.Namespace) -> tuple[dict, str]:
    """The translations of the positional texts by the exported graphs."""
    texts = needed_texts(args)
    translator = onnx_translator(graph, args.threads)
    translations = translate_texts(translator, texts, args.beam or 0, args.length_penalty)
    return printed(texts, translations)


def remote_predict(graph: RemoteGraph, args: argparse.Namespace) -> tuple[dict, str]:
    """``predict`` through the server: greedy translations by its ``translate`` model
    (strings in and out) where it has one, else (and with ``--beam``) the runtime's decoding
    over its ``encoder`` and ``decoder_step`` models."""
    texts = needed_texts(args)
    beam = args.beam or 0
    check_beam_flags(beam, args.length_penalty)
    if graph.name == STRING_GRAPH and beam > 1:
        raise UserError(
            f"graph {STRING_GRAPH} decodes greedily: leave out --graph to decode with --beam "
            "through encoder and decoder_step"
        )
    translator = remote_translator(graph)
    strings = graph if graph.name == STRING_GRAPH else graph.sibling(STRING_GRAPH)
    if beam <= 1 and (graph.name == STRING_GRAPH or strings.served()):
        translations = translate_strings(strings, translator, texts)
    else:
        translations = translate_texts(translator, texts, beam, args.length_penalty)
    return printed(texts, translations)


def needed_texts(args: argparse.Namespace) -> list[str]:
    """The positional texts; none is a ``UserError``."""
    if not args.texts:
        raise UserError('a translate run needs texts to translate: RUN_DIR "text" ...')
    return args.texts


def printed(texts: Sequence[str], translations: Sequence[Translation]) -> tuple[dict, str]:
    """The JSON result and the text, a translation a line; unknown tokens noted on stderr."""
    note_unknown(translations)
    return as_json(texts, translations), "\n".join(t.text for t in translations)


def note_unknown(translations: Sequence[Translation]) -> None:
    """Note on stderr the source tokens read as unknown (``keras_rnn.translate`` too)."""
    unknown = unknown_tokens(translations)
    if unknown:
        print(unknown_note(unknown, "source token(s)"), file=sys.stderr)
