"""Vocabularies by id, shared by every task that reads text and by both the Keras and the
onnxruntime paths: ``Vocabulary`` (characters, or tagging's CoNLL words; ids 0 and 1 reserved)
for charlm and tagging, whose files keep their format; ``TokenVocabulary`` (tokens of
``serving.runtime.text``; ids 0 to 3 reserved) for sequence-to-sequence tasks."""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from serving.errors import UserError

PAD, UNKNOWN = 0, 1  # reserved ids: padding, and any item outside the vocabulary
START, END = 2, 3  # reserved in TokenVocabulary only: a sequence's start and end
UNKNOWN_TOKEN = "<unk>"  # TokenVocabulary.decode's token for UNKNOWN


@dataclass(frozen=True)
class Vocabulary:
    """Characters (charlm, tagging) or words (tagging's CoNLL files) by id; ids 0 and 1 are
    reserved (padding, unknown)."""

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

    def encode(self, text: str | Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Ids of ``text``'s characters, or of a sequence's items (int32), and the distinct
        ones that became UNKNOWN."""
        index = {char: i for i, char in enumerate(self.characters) if i >= 2}
        ids = np.array([index.get(char, UNKNOWN) for char in text], dtype=np.int32)
        unknown = sorted({char for char in text if char not in index})
        return ids, unknown

    def decode(self, ids) -> str:
        return "".join(self.characters[i] for i in ids)


@dataclass(frozen=True)
class TokenVocabulary:
    """Tokens by id for sequence-to-sequence; ids 0 to 3 are reserved (PAD, UNKNOWN, START,
    END). Its file is JSON: the four reserved ids and ``tokens`` (ids 0 to 3 as "")."""

    tokens: tuple[str, ...]  # tokens[id] for ids >= 4; ids 0 to 3 map to ""

    RESERVED: ClassVar[int] = 4  # ids below this are reserved

    def __post_init__(self) -> None:
        if self.tokens[: self.RESERVED] != ("",) * self.RESERVED:
            raise ValueError(f"ids 0 to {self.RESERVED - 1} are reserved: their tokens are ''")
        tokens = self.tokens[self.RESERVED :]
        if "" in tokens or len(set(tokens)) != len(tokens):
            raise ValueError("tokens must be distinct and non-empty")

    @classmethod
    def from_counts(
        cls, counts: Mapping[str, int], min_count: int = 1, max_size: int | None = None
    ) -> TokenVocabulary:
        """The non-empty tokens counted at least ``min_count`` times, most frequent first (ties
        by token), cut to ``max_size`` ids (the reserved ones included) when given."""
        if max_size is not None and max_size < cls.RESERVED:
            raise ValueError(f"max_size must be at least {cls.RESERVED}, got {max_size}")
        kept = sorted(
            (t for t, n in counts.items() if n >= min_count and t), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            kept = kept[: max_size - cls.RESERVED]
        return cls(("",) * cls.RESERVED + tuple(kept))

    @classmethod
    def build(
        cls, sequences: Iterable[Sequence[str]], min_count: int = 1, max_size: int | None = None
    ) -> TokenVocabulary:
        """``from_counts`` of the tokens of ``sequences`` (lists of tokens)."""
        counts = Counter(token for sequence in sequences for token in sequence)
        return cls.from_counts(counts, min_count, max_size)

    @classmethod
    def load(cls, path: Path) -> TokenVocabulary:
        """The vocabulary in ``path``; UserError for a missing or malformed file, or one whose
        reserved ids differ."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            reserved = [data[key] for key in ("pad_id", "unknown_id", "start_id", "end_id")]
            tokens = tuple(data["tokens"])
        except FileNotFoundError:
            raise UserError(f"vocabulary not found: {path}") from None
        except (ValueError, KeyError, TypeError):
            raise UserError(
                f"{path} is not a token vocabulary file (JSON with the reserved ids and 'tokens')"
            ) from None
        if reserved != [PAD, UNKNOWN, START, END]:
            raise UserError(f"{path} reserves ids {reserved}, not {[PAD, UNKNOWN, START, END]}")
        if not all(isinstance(token, str) for token in tokens):
            raise UserError(f"{path}: 'tokens' must be strings")
        try:
            return cls(tokens)
        except ValueError as error:
            raise UserError(f"{path}: {error}") from None

    def to_json(self, **extra: Any) -> bytes:
        """The vocabulary file's bytes, with ``extra`` fields (the caller writes them
        atomically)."""
        return json.dumps(
            {
                "pad_id": PAD,
                "unknown_id": UNKNOWN,
                "start_id": START,
                "end_id": END,
                "tokens": list(self.tokens),
                **extra,
            },
            ensure_ascii=False,
            indent=0,
        ).encode("utf-8")

    @property
    def size(self) -> int:
        return len(self.tokens)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.tokens) if i >= self.RESERVED}

    def encode(self, tokens: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Ids of ``tokens`` (int32, without START or END) and the distinct tokens that became
        UNKNOWN."""
        ids = np.array([self._index.get(token, UNKNOWN) for token in tokens], dtype=np.int32)
        unknown = sorted({token for token in tokens if token not in self._index})
        return ids, unknown

    def decode(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Tokens of ``ids`` up to the first END, without PAD and START; UNKNOWN gives
        UNKNOWN_TOKEN. Raises ValueError for an id outside the vocabulary."""
        tokens = []
        for i in map(int, ids):
            if not 0 <= i < self.size:
                raise ValueError(f"id {i} is outside the vocabulary (size {self.size})")
            if i == END:
                break
            if i == UNKNOWN:
                tokens.append(UNKNOWN_TOKEN)
            elif i not in (PAD, START):
                tokens.append(self.tokens[i])
        return tokens


def unknown_note(unknown: list[str], what: str = "prefix character(s)") -> str:
    """The stderr note for input items outside the vocabulary (read as the unknown id)."""
    return (
        f"note: {len(unknown)} {what} not in the vocabulary, read as unknown: {' '.join(unknown)!r}"
    )
