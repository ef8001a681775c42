"""Sequence tagging with an exported ``tagger`` graph: a tag for every character (or, for a
CoNLL-trained tagger, every whitespace-separated token)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from serving.errors import UserError
from serving.runtime.charlm import PAD, Vocabulary
from serving.runtime.graph import ExportedGraph


def load_tags(vocab_path: Path) -> list[str]:
    """Tag names by id (id 1 first) from the tagger's vocabulary file."""
    try:
        return list(json.loads(Path(vocab_path).read_text(encoding="utf-8"))["tags"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        raise UserError(f"{vocab_path} has no tag names: is this a tagging export?") from None


def tag(
    graph: ExportedGraph, vocab: Vocabulary, tags: list[str], text: str
) -> tuple[list[str], list[str], list[str]]:
    """The items of ``text``, their tags, and the items outside the vocabulary."""
    items = text.split() if graph.runtime["unit"] == "token" else list(text)
    if not items:
        raise UserError("--text is empty: give something to tag")
    if len(items) > graph.runtime["max_length"]:
        raise UserError(
            f"--text has {len(items)} {graph.runtime['unit']}s: this tagger takes at most "
            f"{graph.runtime['max_length']}"
        )
    ids, unknown = vocab.encode(items)
    logits = graph(ids=ids[None])["tag_logits"][0]
    logits[:, PAD] = -np.inf
    return items, [tags[i - 1] for i in np.argmax(logits, axis=-1)], unknown
