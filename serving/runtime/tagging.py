"""Sequence tagging with an exported ``tagger`` graph: a tag for every character (or, for a
CoNLL-trained tagger, every whitespace-separated token)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from serving.errors import UserError
from serving.runtime.graph import ExportedGraph
from serving.runtime.vocab import PAD, Vocabulary


def load_tags(vocab_path: Path) -> list[str]:
    """Tag names by id (id 1 first) from the tagger's vocabulary file."""
    try:
        return list(json.loads(Path(vocab_path).read_text(encoding="utf-8"))["tags"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        raise UserError(f"{vocab_path} has no tag names: is this a tagging export?") from None


PIECES_PER_CALL = 64  # rows of one onnxruntime call when a long text is tagged in pieces


def line_pieces(text: str, max_length: int, cut_at_space: bool = False) -> list[tuple[int, int]]:
    """(start, end) of pieces of whole lines, each at most ``max_length`` long (a longer
    line is cut), each as long as whole lines allow. The tagger trains on these pieces; with
    ``cut_at_space`` a long line is cut after its last space or tab that leaves a piece within
    the limit, where there is one, rather than inside a word."""
    pieces, start, end = [], 0, 0
    for line in text.splitlines(keepends=True):
        if end + len(line) - start > max_length and end > start:
            pieces.append((start, end))
            start = end
        end += len(line)
        while end - start > max_length:
            cut = start + max_length
            if cut_at_space:
                space = max(text.rfind(" ", start, cut), text.rfind("\t", start, cut))
                cut = space + 1 if space > start else cut
            pieces.append((start, cut))
            start = cut
    if end > start:
        pieces.append((start, end))
    return pieces


def tag(
    graph: ExportedGraph, vocab: Vocabulary, tags: list[str], text: str
) -> tuple[list[str], list[str], list[str]]:
    """The items of ``text`` (characters, or whitespace-separated tokens for a CoNLL-trained
    tagger), their tags, and the items outside the vocabulary. A text longer than the tagger's
    ``max_length`` is tagged in pieces: of whole lines (``line_pieces``, cut at spaces) for
    characters, of ``max_length`` tokens for tokens; each piece is tagged as if alone."""
    by_token = graph.runtime["unit"] == "token"
    items = text.split() if by_token else list(text)
    if not items:
        raise UserError(
            "the text is empty (or, for a tagger by token, only whitespace): give something to tag"
        )
    limit = graph.runtime["max_length"]
    if by_token:
        pieces = [(start, min(start + limit, len(items))) for start in range(0, len(items), limit)]
    else:
        pieces = line_pieces(text, limit, cut_at_space=True)
    ids, unknown = vocab.encode(items)
    predicted = np.empty(len(items), np.int64)
    for first in range(0, len(pieces), PIECES_PER_CALL):
        batch = pieces[first : first + PIECES_PER_CALL]
        rows = np.full((len(batch), max(end - start for start, end in batch)), PAD, np.int32)
        for row, (start, end) in enumerate(batch):  # right padding: masked, as in training
            rows[row, : end - start] = ids[start:end]
        logits = graph(ids=rows)["tag_logits"]
        logits[..., PAD] = -np.inf
        for row, (start, end) in enumerate(batch):
            predicted[start:end] = np.argmax(logits[row, : end - start], axis=-1)
    return items, [tags[i - 1] for i in predicted], unknown
