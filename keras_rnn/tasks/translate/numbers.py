"""Numbers written out in words -> their digits, in English and Chinese, for a length study:
sources run from one character (七) to about 150 (twelve-digit numbers in English words).

Pure Python and numpy: no TensorFlow, so data preparation and tests stay fast.
"""

from __future__ import annotations

import numpy as np

from keras_rnn.errors import UserError

LARGEST = 10**12 - 1
LANGUAGES = ("english", "chinese", "both")

ENGLISH_ONES = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
)
ENGLISH_TENS = (
    "_",
    "_",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
)
ENGLISH_SCALES = ((10**9, "billion"), (10**6, "million"), (10**3, "thousand"), (1, ""))

CHINESE_DIGITS = "零一二三四五六七八九"
CHINESE_PLACES = ("千", "百", "十", "")
CHINESE_SECTIONS = ((10**8, "亿"), (10**4, "万"), (1, ""))


def _check_range(number: int) -> None:
    if not 0 <= number <= LARGEST:
        raise ValueError(f"{number} is outside 0..{LARGEST}")


def _english_below_hundred(number: int) -> str:
    if number < 20:
        return ENGLISH_ONES[number]
    tens, ones = divmod(number, 10)
    return ENGLISH_TENS[tens] + (f"-{ENGLISH_ONES[ones]}" if ones else "")


def _english_below_thousand(number: int) -> str:
    hundreds, rest = divmod(number, 100)
    if not hundreds:
        return _english_below_hundred(rest)
    words = f"{ENGLISH_ONES[hundreds]} hundred"
    return f"{words} and {_english_below_hundred(rest)}" if rest else words


def english_words(number: int) -> str:
    """British English words, 0..999,999,999,999: 321405 -> "three hundred and twenty-one
    thousand four hundred and five", 1005 -> "one thousand and five" (billion = 10**9)."""
    _check_range(number)
    if number == 0:
        return ENGLISH_ONES[0]
    parts = []
    for scale, name in ENGLISH_SCALES:
        group = number // scale % 1000
        if group:
            parts.append(f"{_english_below_thousand(group)} {name}".rstrip())
    last_group = number % 1000
    if number >= 1000 and 0 < last_group < 100:
        parts[-1] = f"and {parts[-1]}"
    return " ".join(parts)


def _chinese_section(number: int) -> str:
    """1..9999 with 零 for each run of zeros between non-zero digits: 1010 -> 一千零一十."""
    digits = f"{number:04d}"
    words, zero_pending, started = [], False, False
    for digit, place in zip(digits, CHINESE_PLACES, strict=True):
        if digit == "0":
            zero_pending = zero_pending or started
            continue
        if zero_pending:
            words.append("零")
            zero_pending = False
        words.append(CHINESE_DIGITS[int(digit)] + place)
        started = True
    return "".join(words)


def chinese_words(number: int) -> str:
    """Chinese numerals, 0..999,999,999,999, grouped by 万 (10**4) and 亿 (10**8): 10 -> 十,
    110 -> 一百一十, 10005 -> 一万零五, 100000 -> 十万, 321000005 -> 三亿二千一百万零五.

    One 零 stands for each run of zeros inside the number; a leading 一十 is said 十."""
    _check_range(number)
    if number == 0:
        return CHINESE_DIGITS[0]
    words, zero_pending = [], False
    for scale, unit in CHINESE_SECTIONS:
        section = number // scale % 10**4
        if not section:
            zero_pending = zero_pending or bool(words)
            continue
        if words and (zero_pending or section < 1000):
            words.append("零")
        words.append(_chinese_section(section) + unit)
        zero_pending = False
    text = "".join(words)
    return text[1:] if text.startswith("一十") else text


def _words(number: int, language: str) -> str:
    return english_words(number) if language == "english" else chinese_words(number)


def _class_size(digits: int) -> int:
    return 10 if digits == 1 else 9 * 10 ** (digits - 1)


def _distinct_numbers(rng: np.random.Generator, count: int) -> list[int]:
    """``count`` distinct numbers: digit count uniform over 1..12 among the counts not yet used
    up (there are only ten one-digit numbers), then the number uniform among those digits."""
    used: set[int] = set()
    per_class = dict.fromkeys(range(1, 13), 0)
    open_classes = list(per_class)
    numbers = []
    while len(numbers) < count:
        digits = open_classes[int(rng.integers(len(open_classes)))]
        low = 0 if digits == 1 else 10 ** (digits - 1)
        number = int(rng.integers(low, 10**digits))
        if number in used:
            continue
        used.add(number)
        numbers.append(number)
        per_class[digits] += 1
        if per_class[digits] == _class_size(digits):
            open_classes.remove(digits)
    return numbers


def number_splits(
    seed: int, train: int, val: int, test: int, language: str = "both"
) -> dict[str, list[tuple[str, str]]]:
    """(words, digits) pairs for "train", "val" and "test", deterministic for a seed.

    Every example has its own number, so no number of one split appears in another. Digit
    counts are drawn uniformly from 1..12 (source lengths spread from 1 to about 150
    characters), the examples are then shuffled into the splits, so each split has the same
    length mix. ``language``: "english", "chinese", or "both" (each example picks one).
    """
    if language not in LANGUAGES:
        raise UserError(f"language {language!r} is not one of {', '.join(LANGUAGES)}")
    sizes = {"train": train, "val": val, "test": test}
    for split, size in sizes.items():
        if size < 0:
            raise UserError(f"{split} examples must be 0 or more, not {size}")
    total = sum(sizes.values())
    if total > LARGEST + 1:
        raise UserError(
            f"train + val + test examples need {total} distinct numbers, there are {LARGEST + 1}"
        )
    rng = np.random.default_rng(seed)
    numbers = _distinct_numbers(rng, total)
    order = rng.permutation(total)
    if language == "both":
        languages = [("english", "chinese")[pick] for pick in rng.integers(2, size=total)]
    else:
        languages = [language] * total
    pairs = [(_words(numbers[i], languages[i]), str(numbers[i])) for i in order]
    splits, start = {}, 0
    for split in ("test", "val", "train"):
        splits[split] = pairs[start : start + sizes[split]]
        start += sizes[split]
    return {split: splits[split] for split in ("train", "val", "test")}
