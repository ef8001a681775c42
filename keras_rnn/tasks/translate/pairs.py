"""Sentence pairs in the Tatoeba/Anki tab-separated format (manythings.org's cmn.txt and
friends): one pair a line, "English<TAB>translation[<TAB>attribution]", for example
"Go.<TAB>去。<TAB>CC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #333147 (Kaiser)".

Pure Python: no TensorFlow, so data preparation and tests stay fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from keras_rnn.errors import UserError
from serving import cli

# The English prefixes of the PyTorch seq2seq tutorial (eng_prefixes), which the course uses.
COURSE_PREFIXES = (
    "i am ",
    "i m ",
    "he is",
    "he s ",
    "she is",
    "she s ",
    "you are",
    "you re ",
    "we are",
    "we re ",
    "they are",
    "they re ",
)

CONTRACTIONS = (
    (r"\bi'm\b", "i am"),
    (r"\b(he|she|it|that|what|who|where|there|here)'s\b", r"\1 is"),
    (r"\blet's\b", "let us"),
    (r"\bcan't\b", "can not"),
    (r"\bwon't\b", "will not"),
    (r"\bshan't\b", "shall not"),
    (r"n't\b", " not"),
    (r"'re\b", " are"),
    (r"'ve\b", " have"),
    (r"'ll\b", " will"),
    (r"'d\b", " would"),
)

# Han ideographs (with extensions and compatibility forms) and Japanese kana: one token each.
CJK_CHARACTER = re.compile(
    "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"
)
FORMAT = "English<TAB>translation[<TAB>attribution]"


def normalize_english(text: str) -> str:
    """The key prefixes are matched against: lower case, contractions expanded ("i'm" -> "i
    am", "he's" -> "he is", "you're" -> "you are", "don't" -> "do not"), the words (runs of
    letters and digits) joined by single spaces, with a trailing space: "I'm sorry." -> "i am
    sorry "."""
    text = text.lower().replace("\u2019", "'")
    for pattern, replacement in CONTRACTIONS:
        text = re.sub(pattern, replacement, text)
    return " ".join(re.sub(r"[\W_]+", " ", text).split()) + " "


def count_tokens(text: str) -> int:
    """Each CJK character is one token; so is each whitespace-separated run of the other
    characters that holds a letter or digit (punctuation alone is not a token):
    "我爱你。" -> 3, "Je t'aime !" -> 2."""
    words = CJK_CHARACTER.sub(" ", text).split()
    words_with_letters = [word for word in words if any(c.isalnum() for c in word)]
    return len(CJK_CHARACTER.findall(text)) + len(words_with_letters)


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line that is not blank, without BOM or trailing "\\r"."""
    file = cli.input_file(path, "pairs")
    for number, raw in enumerate(file.read_bytes().split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise UserError(
                f"{path}:{number}: not UTF-8 text (byte 0x{raw[error.start]:02x} at byte "
                f"{error.start + 1} of the line); save the file as UTF-8"
            ) from None
        if number == 1:
            line = line.removeprefix("\ufeff")
        line = line.removesuffix("\r")
        if "\t" in line or line.strip():
            yield number, line


def _parse(path: str | Path, number: int, line: str) -> tuple[str, str]:
    """(English, translation) of one line; a malformed line is a UserError naming it."""
    where = f"{path}:{number}"
    fields = line.split("\t")
    if len(fields) < 2:
        raise UserError(f"{where}: no tab: expected {FORMAT}")
    if len(fields) > 3:
        raise UserError(f"{where}: {len(fields)} tab-separated fields: expected {FORMAT}")
    english, translation = fields[0].strip(), fields[1].strip()
    if not english:
        raise UserError(f"{where}: the English sentence (field 1) is empty")
    if not translation:
        raise UserError(f"{where}: the translation (field 2) is empty")
    return english, translation


def _too_long(english: str, translation: str, max_words: int | None) -> bool:
    if max_words is None:
        return False
    return len(english.split()) > max_words or count_tokens(translation) > max_words


def read_pairs(
    path: str | Path,
    *,
    max_words: int | None = None,
    prefixes: tuple[str, ...] = (),
    reverse: bool = False,
) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(source, target) pairs of a Tatoeba/Anki file, and how many pairs each filter dropped.

    Pairs are (English, translation), or (translation, English) with ``reverse``. Filters,
    in this order, each pair counted under the first that drops it:

    - "too_long": with ``max_words``, the English side has more whitespace-separated words,
      or the translation more tokens (``count_tokens``: a CJK character is one token).
    - "prefix": with ``prefixes``, ``normalize_english`` of the English side starts with
      none of them (``COURSE_PREFIXES`` are the course's).

    Blank lines are skipped; a UTF-8 BOM and "\\r\\n" line ends are accepted; the third field
    (attribution) is optional. Everything else is a UserError naming the file and line: a
    line without a tab or with more than three fields, an empty English sentence or
    translation, bytes that are not UTF-8; so are a missing file, a file without pairs, and
    filters that drop every pair.
    """
    if max_words is not None and max_words < 1:
        raise UserError(f"max_words must be 1 or more, not {max_words}")
    wanted = tuple(prefix.lower() for prefix in prefixes)
    pairs, dropped, total = [], {"too_long": 0, "prefix": 0}, 0
    for number, line in _lines(path):
        english, translation = _parse(path, number, line)
        total += 1
        if _too_long(english, translation, max_words):
            dropped["too_long"] += 1
        elif wanted and not normalize_english(english).startswith(wanted):
            dropped["prefix"] += 1
        else:
            pairs.append((translation, english) if reverse else (english, translation))
    if not total:
        raise UserError(f"{path} has no sentence pairs: expected lines of {FORMAT}")
    if not pairs:
        reasons = _reasons(dropped, max_words, prefixes)
        raise UserError(f"{path}: the filters dropped all {total} pairs: {reasons}")
    return pairs, dropped


def _reasons(dropped: dict[str, int], max_words: int | None, prefixes: tuple[str, ...]) -> str:
    reasons = []
    if max_words is not None:
        reasons.append(f"{dropped['too_long']} longer than {max_words} words")
    if prefixes:
        reasons.append(f"{dropped['prefix']} not starting with one of the {len(prefixes)} prefixes")
    return ", ".join(reasons)
