"""Tokenization without TensorFlow: ``unicodedata`` and ``re`` mirror ``keras_rnn.text``'s
tensorflow-text pipeline token for token, so that serving reads text as training did.

Two modes:

- ``"characters"``: NFKC, then every code point is a token (spaces, tabs and newlines too).
- ``"words"``: NFKC_Casefold (NFKC, full case folding, default-ignorable code points removed:
  what tensorflow-text's ``case_fold_utf8`` applies), then every character falls in one of
  three classes by its general category:

  - separator: ``Z*`` (spaces, line and paragraph separators), ``Cc`` (tabs, newlines and other
    controls) and ``Cf`` (format characters left after folding): dropped, ending a token;
  - single: ``P*`` (punctuation), ``S*`` (symbols, emoji included) and the ideographs and kana
    of ``CJK_RANGES``: a token each;
  - anything else (letters, digits, marks): runs of them are tokens.

  Like BERT's basic tokenizer without its accent stripping ("café" stays "café"), and with
  symbols split off as punctuation is. "Don't" gives ``don ' t``, "23.11.2026" ``23 . 11 .
  2026``, "2026年11月23日" ``2026 年 11 月 23 日``.

Both sides agree on every character that Unicode 14.0 (Python 3.11's ``unicodedata``)
assigns (tests/test_text.py checks each); ICU and RE2 inside tensorflow-text know later
versions, so a character assigned after 14.0 may normalize or split differently there.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence

MODES = ("characters", "words")

# Single tokens in "words" mode besides punctuation and symbols: Han ideographs and kana.
CJK_RANGES: tuple[tuple[int, int], ...] = (
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana Phonetic Extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x1AFF0, 0x1B16F),  # Kana Extended-B, Kana Supplement, Kana Extended-A, Small Kana Extension
    (0x20000, 0x3FFFF),  # Supplementary and Tertiary Ideographic Planes
)

_CJK = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in CJK_RANGES) + "]")

# Default_Ignorable_Code_Point (DerivedCoreProperties.txt), which NFKC_Casefold removes.
_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_IGNORABLE = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _IGNORABLE_RANGES) + "]")

_SEPARATOR, _SINGLE, _WORD = 0, 1, 2
_OPENING = frozenset("¿¡")  # other punctuation (Po) that opens a phrase


def check_mode(mode: str) -> None:
    """Raise ValueError unless ``mode`` is one of MODES."""
    if mode not in MODES:
        raise ValueError(f"tokenization mode must be one of {MODES}, got {mode!r}")


def fold(text: str) -> str:
    """NFKC_Casefold of ``text`` as ICU (tensorflow-text's ``case_fold_utf8``) computes it: each
    character mapped on its own, then NFKC (marks out of canonical order included)."""
    return unicodedata.normalize("NFKC", "".join(map(_fold_character, text)))


@functools.lru_cache(maxsize=65536)
def _fold_character(char: str) -> str:
    """NFKC(casefold(NFKD(casefold(NFD(char))))) without default-ignorable code points."""
    text = _IGNORABLE.sub("", unicodedata.normalize("NFD", char).casefold())
    text = _IGNORABLE.sub("", unicodedata.normalize("NFKD", text).casefold())
    return unicodedata.normalize("NFKC", text)


def tokenize(text: str, mode: str) -> list[str]:
    """The tokens of ``text`` in ``mode`` ("characters" or "words"; see the module)."""
    check_mode(mode)
    if mode == "characters":
        return list(unicodedata.normalize("NFKC", text))
    tokens: list[str] = []
    start = None  # where the current run of word characters began
    text = fold(text)
    for i, char in enumerate(text):
        kind = _kind(char)
        if kind == _WORD:
            start = i if start is None else start
            continue
        if start is not None:
            tokens.append(text[start:i])
            start = None
        if kind == _SINGLE:
            tokens.append(char)
    if start is not None:
        tokens.append(text[start:])
    return tokens


def detokenize(tokens: Sequence[str], mode: str) -> str:
    """Text from tokens; BLEU is computed on it. "characters": the tokens joined. "words": joined
    by single spaces, except none
    - next to a CJK ideograph or kana (Chinese and Japanese put no spaces between words),
    - before closing or other punctuation (``Pe``, ``Pf``, ``Po``: ``) ] . , ! ? : ; 。 ” '``),
    - after opening punctuation (``Ps``, ``Pi``, and ¿ ¡: ``( [ “ ¿``),
    - on either side of a dash or connector (``Pd``, ``Pc``: ``- _``),
    - around ``"``: after one that opens (an even number before it), before one that closes,
    - after ``'`` or ``’`` between two words (contractions: "don't", "l'eau"),
    - after ``.`` or ``:`` between two numbers, or ``,`` between a number and three digits
      ("23.11.2026", "10:30", "1,000")."""
    check_mode(mode)
    if mode == "characters":
        return "".join(tokens)
    parts: list[str] = []
    quotes = 0
    for i, token in enumerate(tokens):
        if i and _space_between(tokens, i, quotes):
            parts.append(" ")
        parts.append(token)
        quotes += token == '"'
    return "".join(parts)


def _kind(char: str) -> int:
    category = unicodedata.category(char)
    if category[0] == "Z" or category in ("Cc", "Cf"):
        return _SEPARATOR
    if category[0] in "PS" or _CJK.match(char):
        return _SINGLE
    return _WORD


def _space_between(tokens: Sequence[str], i: int, quotes: int) -> bool:
    """Whether a space goes between tokens[i - 1] and tokens[i]; ``quotes``: how many ``"``
    tokens precede tokens[i]."""
    left, right = tokens[i - 1], tokens[i]
    if _is_cjk(left) or _is_cjk(right):
        return False
    left_category, right_category = _category(left), _category(right)
    opening_quote = quotes % 2 == 0  # right, if it is '"', opens; left, if it is '"', closes
    closing = right_category in ("Pe", "Pf", "Po") and right not in _OPENING
    if closing and not (right == '"' and opening_quote):
        return False
    if left_category in ("Ps", "Pi") or left in _OPENING or (left == '"' and not opening_quote):
        return False
    if {left_category, right_category} & {"Pd", "Pc"}:
        return False
    before = tokens[i - 2] if i >= 2 else ""
    if left in ("'", "\u2019") and _is_word(before) and _is_word(right):
        return False
    if not (before.isdecimal() and right.isdecimal()):
        return True
    return not (left in (".", ":") or (left == "," and len(right) == 3))


def _category(token: str) -> str:
    """The general category of a one-character token, else ""."""
    return unicodedata.category(token) if len(token) == 1 else ""


def _is_cjk(token: str) -> bool:
    return len(token) == 1 and _CJK.match(token) is not None


def _is_word(token: str) -> bool:
    return bool(token) and _kind(token[0]) == _WORD and not _is_cjk(token)
