"""Vocabularies of characters (or tags' items) by id, with reserved padding and unknown ids,
shared by every task that reads text and by both the Keras and the onnxruntime paths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.errors import UserError

PAD, UNKNOWN = 0, 1  # reserved ids: padding, and any character outside the vocabulary


@dataclass(frozen=True)
class Vocabulary:
    """Characters by id; ids 0 and 1 are reserved (padding, unknown)."""

    characters: tuple[str, ...]  # characters[id] for ids >= 2; ids 0 and 1 map to ""

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            characters = data["characters"]
        except FileNotFoundError:
            raise UserError(f"vocabulary not found: {path}") from None
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{path} is not a vocabulary file (JSON with 'characters')") from None
        return cls(tuple(characters))

    def to_json(self, **extra: Any) -> bytes:
        """The vocabulary file's bytes, with ``extra`` fields (the caller writes them
        atomically)."""
        return json.dumps(
            {"pad_id": PAD, "unknown_id": UNKNOWN, "characters": list(self.characters), **extra},
            ensure_ascii=False,
            indent=0,
        ).encode("utf-8")

    @property
    def size(self) -> int:
        return len(self.characters)

    def encode(self, text: str) -> tuple[np.ndarray, list[str]]:
        """Ids of ``text`` (int32) and the distinct characters that became UNKNOWN."""
        index = {char: i for i, char in enumerate(self.characters) if i >= 2}
        ids = np.array([index.get(char, UNKNOWN) for char in text], dtype=np.int32)
        unknown = sorted({char for char in text if char not in index})
        return ids, unknown

    def decode(self, ids) -> str:
        return "".join(self.characters[i] for i in ids)


def unknown_note(unknown: list[str], what: str = "prefix character(s)") -> str:
    """The stderr note for input items outside the vocabulary (read as the unknown id)."""
    return (
        f"note: {len(unknown)} {what} not in the vocabulary, read as unknown: {' '.join(unknown)!r}"
    )
