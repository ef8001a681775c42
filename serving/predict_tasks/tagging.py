"""``serving.predict`` on a tagging run: ``--text``, each item with its tag, a line each."""

from __future__ import annotations

import argparse
import sys

from serving import cli
from serving.errors import UserError
from serving.runtime.graph import ExportedGraph
from serving.runtime.tagging import load_tags, tag
from serving.runtime.vocab import Vocabulary, unknown_note

TITLE = "tagging runs"
TAKES_TEXTS = False
TEXT_HELP = (
    "text to tag; text longer than the tagger's max_length (from its export) is tagged in "
    "pieces of whole lines, as the tagger was trained; a longer line is cut after a space "
    "(training cuts it at max_length)"
)


def add_arguments(group: cli.FlagGroup) -> None:
    """``--text``; None when not given."""
    group.add_argument("--text", help=TEXT_HELP)


def predict(graph: ExportedGraph, args: argparse.Namespace) -> tuple[dict, str]:
    """The tags of ``--text``, with the vocabulary exported beside the graph; items outside
    it are noted on stderr."""
    vocab_path = graph.export_dir / graph.runtime["vocab"]
    try:
        items, tags, unknown = tag(
            graph, Vocabulary.load(vocab_path), load_tags(vocab_path), args.text or ""
        )
    except UserError as error:
        raise UserError(str(error).replace("the text", "--text")) from None
    if unknown:
        print(unknown_note(unknown, f"{graph.runtime['unit']}(s)"), file=sys.stderr)
    return tagged(items, tags, unknown)


def tagged(items: list[str], tags: list[str], unknown: list[str]) -> tuple[dict, str]:
    """What ``predict`` gives for ``tag``'s answer: the JSON-able result, and each item
    with its tag, a line each."""
    lines = [f"{item!r}\t{name}" for item, name in zip(items, tags, strict=True)]
    return {"items": items, "tags": tags, "unknown": unknown}, "\n".join(lines)


remote_predict = predict  # calls of the graph only, which a RemoteGraph answers alike
