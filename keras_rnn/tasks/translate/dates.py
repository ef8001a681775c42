"""Date normalisation: dates written by people, in English and Chinese -> ISO 8601 YYYY-MM-DD.

Dates run from 1950-01-01 to 2049-12-31, so a two-digit year is never ambiguous (50-99 ->
19xx, 00-49 -> 20xx). Numeric forms are day-month-year or year-month-day, never month/day,
and a two-digit year always comes last. Each formatter renders lower case; ``apply_case``
gives the "title" and "upper" variants of the ones with Latin letters.

Pure Python and numpy: no TensorFlow, so data preparation and tests stay fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

import numpy as np

from keras_rnn.errors import UserError
from keras_rnn.tasks.translate.numbers import chinese_words

FIRST_DAY = date(1950, 1, 1)
LAST_DAY = date(2049, 12, 31)
DAY_COUNT = (LAST_DAY - FIRST_DAY).days + 1
CASES = ("lower", "title", "upper")

MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)
WEEKDAYS = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
CHINESE_WEEKDAYS = "一二三四五六日"
CHINESE_YEAR_DIGITS = "〇一二三四五六七八九"


def ordinal(number: int) -> str:
    """1 -> "1st", 2 -> "2nd", 3 -> "3rd", 11 -> "11th", 22 -> "22nd"."""
    if 11 <= number % 100 <= 13:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th') }"


def _month(day: date) -> str:
    return MONTHS[day.month - 1]


def _weekday(day: date) -> str:
    return WEEKDAYS[day.weekday()]


def _short_year(day: date) -> str:
    return f"{day.year % 100:02d}"


def _chinese_numerals(day: date) -> str:
    year = "".join(CHINESE_YEAR_DIGITS[int(digit)] for digit in str(day.year))
    return f"{year}年{chinese_words(day.month)}月{chinese_words(day.day)}日"


def _chinese_digits(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _chinese_weekday(day: date, prefix: str) -> str:
    return prefix + CHINESE_WEEKDAYS[day.weekday()]


def day_month_year(day: date) -> str:
    """23 november 2026"""
    return f"{day.day} {_month(day)} {day.year}"


def day_abbreviation_year(day: date) -> str:
    """23 nov 2026"""
    return f"{day.day} {_month(day)[:3]} {day.year}"


def month_day_year(day: date) -> str:
    """november 23, 2026"""
    return f"{_month(day)} {day.day}, {day.year}"


def abbreviation_day_short_year(day: date) -> str:
    """nov 23, 26"""
    return f"{_month(day)[:3]} {day.day}, {_short_year(day)}"


def month_ordinal_year(day: date) -> str:
    """november 23rd, 2026"""
    return f"{_month(day)} {ordinal(day.day)}, {day.year}"


def ordinal_of_month_year(day: date) -> str:
    """23rd of november 2026"""
    return f"{ordinal(day.day)} of {_month(day)} {day.year}"


def ordinal_month_year(day: date) -> str:
    """23rd november 2026"""
    return f"{ordinal(day.day)} {_month(day)} {day.year}"


def weekday_month_day_year(day: date) -> str:
    """monday, november 23, 2026"""
    return f"{_weekday(day)}, {_month(day)} {day.day}, {day.year}"


def weekday_the_ordinal_of_month_year(day: date) -> str:
    """monday the 23rd of november 2026"""
    return f"{_weekday(day)} the {ordinal(day.day)} of {_month(day)} {day.year}"


def short_weekday_day_abbreviation_year(day: date) -> str:
    """mon 23 nov 2026"""
    return f"{_weekday(day)[:3]} {day.day} {_month(day)[:3]} {day.year}"


def weekday_day_month_year_slashes(day: date) -> str:
    """monday 23/11/2026"""
    return f"{_weekday(day)} {day.day:02d}/{day.month:02d}/{day.year}"


def day_abbreviation_year_dashes(day: date) -> str:
    """23-nov-2026"""
    return f"{day.day:02d}-{_month(day)[:3]}-{day.year}"


def day_month_year_dots(day: date) -> str:
    """23.11.2026"""
    return f"{day.day:02d}.{day.month:02d}.{day.year}"


def day_month_short_year_dots(day: date) -> str:
    """23.11.26"""
    return f"{day.day:02d}.{day.month:02d}.{_short_year(day)}"


def day_month_year_slashes(day: date) -> str:
    """23/11/2026 (03/01/2026 for 3 January)"""
    return f"{day.day:02d}/{day.month:02d}/{day.year}"


def unpadded_day_month_year_slashes(day: date) -> str:
    """23/11/2026 (3/1/2026 for 3 January)"""
    return f"{day.day}/{day.month}/{day.year}"


def day_month_short_year_dashes(day: date) -> str:
    """23-11-26"""
    return f"{day.day:02d}-{day.month:02d}-{_short_year(day)}"


def year_month_day_slashes(day: date) -> str:
    """2026/11/23"""
    return f"{day.year}/{day.month:02d}/{day.day:02d}"


def year_month_day_dashes(day: date) -> str:
    """2026-11-23 (the target itself)"""
    return day.isoformat()


def year_month_day_compact(day: date) -> str:
    """20261123"""
    return f"{day.year}{day.month:02d}{day.day:02d}"


def chinese_digits(day: date) -> str:
    """2026年11月23日"""
    return _chinese_digits(day)


def chinese_short_year(day: date) -> str:
    """26年11月23日"""
    return f"{_short_year(day)}年{day.month}月{day.day}日"


def chinese_numerals(day: date) -> str:
    """二〇二六年十一月二十三日"""
    return _chinese_numerals(day)


def chinese_digits_weekday(day: date) -> str:
    """2026年11月23日星期一"""
    return _chinese_digits(day) + _chinese_weekday(day, "星期")


def chinese_weekday_digits(day: date) -> str:
    """周一 2026年11月23日"""
    return f"{_chinese_weekday(day, '周')} {_chinese_digits(day)}"


def chinese_digits_bracketed_weekday(day: date) -> str:
    """2026年11月23日（周一）"""
    return f"{_chinese_digits(day)}（{_chinese_weekday(day, '周')}）"


def chinese_numerals_weekday(day: date) -> str:
    """二〇二六年十一月二十三日星期一"""
    return _chinese_numerals(day) + _chinese_weekday(day, "星期")


def chinese_weekday_numerals(day: date) -> str:
    """星期一 二〇二六年十一月二十三日"""
    return f"{_chinese_weekday(day, '星期')} {_chinese_numerals(day)}"


FORMATS: tuple[Callable[[date], str], ...] = (
    day_month_year,
    day_abbreviation_year,
    month_day_year,
    abbreviation_day_short_year,
    month_ordinal_year,
    ordinal_of_month_year,
    ordinal_month_year,
    weekday_month_day_year,
    weekday_the_ordinal_of_month_year,
    short_weekday_day_abbreviation_year,
    weekday_day_month_year_slashes,
    day_abbreviation_year_dashes,
    day_month_year_dots,
    day_month_short_year_dots,
    day_month_year_slashes,
    unpadded_day_month_year_slashes,
    day_month_short_year_dashes,
    year_month_day_slashes,
    year_month_day_dashes,
    year_month_day_compact,
    chinese_digits,
    chinese_short_year,
    chinese_numerals,
    chinese_digits_weekday,
    chinese_weekday_digits,
    chinese_digits_bracketed_weekday,
    chinese_numerals_weekday,
    chinese_weekday_numerals,
)


NAMES = frozenset(name[:length] for name in MONTHS + WEEKDAYS for length in (3, None))


def _capitalise_name(word: re.Match[str]) -> str:
    text = word.group()
    return text.capitalize() if text in NAMES else text


def apply_case(text: str, case: str) -> str:
    """ "lower" keeps a formatter's text, "title" capitalises the month and weekday names
    ("Monday the 23rd of November 2026"), "upper" upper-cases every letter ("23RD")."""
    if case == "lower":
        return text
    if case == "title":
        return re.sub(r"\b[a-z]+\b", _capitalise_name, text)
    if case == "upper":
        return text.upper()
    raise ValueError(f"case {case!r} is not one of {', '.join(CASES)}")


def render(day: date, formatter: Callable[[date], str], case: str = "lower") -> str:
    """``day`` written by ``formatter`` (one of FORMATS) in ``case`` (one of CASES)."""
    return apply_case(formatter(day), case)


def _longest_source() -> int:
    """Lengths depend on day, month and weekday only; days 21-27 of each month meet every
    weekday with the longest day numbers in every format, so one year holds every maximum."""
    year = [date(2024, 1, 1) + timedelta(days) for days in range(366)]
    return max(len(formatter(day)) for formatter in FORMATS for day in year)


LONGEST_SOURCE = _longest_source()
LONGEST_TARGET = len("YYYY-MM-DD")


def date_splits(seed: int, train: int, val: int, test: int) -> dict[str, list[tuple[str, str]]]:
    """(written date, ISO date) pairs for "train", "val" and "test", deterministic for a seed.

    One example per calendar date: a seeded permutation of the 36525 dates gives test the
    first ``test`` dates, validation the next ``val`` and training the next ``train``, so no
    date of validation or test appears in training in any format (and the test dates of a
    seed, nor their formats, change with ``train`` and ``val``). Each example draws its
    format uniformly from FORMATS and its case uniformly from CASES (the case changes only
    formats with Latin letters).
    """
    sizes = {"test": test, "val": val, "train": train}
    for split, size in sizes.items():
        if size < 0:
            raise UserError(f"{split} examples must be 0 or more, not {size}")
    total = sum(sizes.values())
    if total > DAY_COUNT:
        raise UserError(
            f"train + val + test examples need {total} distinct dates, the range "
            f"{FIRST_DAY}..{LAST_DAY} has {DAY_COUNT}"
        )
    rng = np.random.default_rng(seed)
    offsets = rng.permutation(DAY_COUNT)
    formats = rng.integers(len(FORMATS), size=DAY_COUNT)
    cases = rng.integers(len(CASES), size=DAY_COUNT)
    pairs = []
    for offset, format_index, case_index in zip(
        offsets[:total], formats[:total], cases[:total], strict=True
    ):
        day = FIRST_DAY + timedelta(days=int(offset))
        pairs.append((render(day, FORMATS[format_index], CASES[case_index]), day.isoformat()))
    splits, start = {}, 0
    for split, size in sizes.items():
        splits[split] = pairs[start : start + size]
        start += size
    return {split: splits[split] for split in ("train", "val", "test")}
