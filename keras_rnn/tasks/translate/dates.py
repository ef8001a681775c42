"""Date normalisation: dates written by people, in English and Chinese -> ISO 8601 YYYY-MM-DD.

Each format is a template over a date's fields (``fields``): ``FORMATS`` are the 48 the
model trains on, ``HELDOUT_FORMATS`` five more that no training, validation or test example
uses, which measure how the model carries what it learnt to a way of writing it never saw.
Every character of the held-out formats occurs in the training formats, so they hold no
token the training vocabulary lacks; each recombines familiar parts (an ordinal of a month
followed by a comma, a dotted abbreviation with an apostrophe year, dashes after a weekday,
year-first dots, 星期 before digits).

Dates run from 1950-01-01 to 2049-12-31, so a two-digit year ("26", "'26") is never
ambiguous: the century pivot is 50 (50-99 -> 19xx, 00-49 -> 20xx). Numeric forms are
day-month-year or year-month-day (a four-digit year first), never month/day, and a
two-digit year always comes last. Templates are lower case; ``render`` gives the "title"
and "upper" case variants of those with Latin letters, and the "double" spacing variant
(every space doubled).

Pure Python and numpy: no TensorFlow, so data preparation and tests stay fast.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import numpy as np

from keras_rnn.errors import UserError
from keras_rnn.tasks.translate.numbers import chinese_words

FIRST_DAY = date(1950, 1, 1)
LAST_DAY = date(2049, 12, 31)
DAY_COUNT = (LAST_DAY - FIRST_DAY).days + 1
CASES = ("lower", "title", "upper")
SPACINGS = ("single", "double")
DOUBLE_SPACING_SHARE = 0.2  # of the examples drawn with every space doubled

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
DOTTED_MONTHS = (
    "jan.",
    "feb.",
    "mar.",
    "apr.",
    "may",
    "jun.",
    "jul.",
    "aug.",
    "sept.",
    "oct.",
    "nov.",
    "dec.",
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

# name -> template, lower case; the comments write 2026-11-23 (a Monday) or a date that shows
# what padding or a dotted abbreviation does (tests/test_translate_data.py writes them all).
FORMATS: dict[str, str] = {
    "day_month_year": "{day} {month} {year}",  # 23 november 2026
    "day_abbreviation_year": "{day} {mon} {year}",  # 23 nov 2026
    "month_day_year": "{month} {day}, {year}",  # november 23, 2026
    "abbreviation_day_short_year": "{mon} {day}, {yy}",  # nov 23, 26
    "month_ordinal_year": "{month} {ordinal}, {year}",  # november 23rd, 2026
    "ordinal_of_month_year": "{ordinal} of {month} {year}",  # 23rd of november 2026
    "ordinal_month_year": "{ordinal} {month} {year}",  # 23rd november 2026
    "weekday_month_day_year": "{weekday}, {month} {day}, {year}",  # monday, november 23, 2026
    "weekday_the_ordinal_of_month_year": "{weekday} the {ordinal} of {month} {year}",
    "short_weekday_day_abbreviation_year": "{wkd} {day} {mon} {year}",  # mon 23 nov 2026
    "weekday_day_month_year_slashes": "{weekday} {day2}/{month2}/{year}",  # monday 23/11/2026
    "day_abbreviation_year_dashes": "{day2}-{mon}-{year}",  # 23-nov-2026
    "day_month_year_dots": "{day2}.{month2}.{year}",  # 23.11.2026
    "day_month_short_year_dots": "{day2}.{month2}.{yy}",  # 23.11.26
    "day_month_year_slashes": "{day2}/{month2}/{year}",  # 23/11/2026, 03/01/2026
    "unpadded_day_month_year_slashes": "{day}/{month_number}/{year}",  # 3/1/2026
    "day_month_short_year_dashes": "{day2}-{month2}-{yy}",  # 23-11-26
    "year_month_day_slashes": "{year}/{month2}/{day2}",  # 2026/11/23
    "year_month_day_dashes": "{year}-{month2}-{day2}",  # 2026-11-23, the target itself
    "year_month_day_compact": "{year}{month2}{day2}",  # 20261123
    "month_day_year_no_comma": "{month} {day} {year}",  # november 23 2026
    "month_ordinal_year_no_comma": "{month} {ordinal} {year}",  # november 23rd 2026
    "day_month_comma_year": "{day} {month}, {year}",  # 23 november, 2026
    "the_ordinal_of_month_year": "the {ordinal} of {month} {year}",  # the 23rd of november 2026
    "dotted_abbreviation_day_year": "{mon_dot} {day}, {year}",  # nov. 23, 2026; sept. 3, 2026
    "day_dotted_abbreviation_year": "{day} {mon_dot} {year}",  # 23 nov. 2026; 3 may 2026
    "abbreviation_day_apostrophe_year": "{mon} {day}, '{yy}",  # nov 23, '26
    "day_abbreviation_apostrophe_year": "{day} {mon} '{yy}",  # 23 nov '26
    "weekday_day_month_year": "{weekday}, {day} {month} {year}",  # monday, 23 november 2026
    "short_weekday_abbreviation_day_year": "{wkd}, {mon} {day}, {year}",  # mon, nov 23, 2026
    "dotted_short_weekday_ordinal_year": "{wkd}. {ordinal} {mon_dot} {year}",  # mon. 23rd nov. 2026
    "day_month_year_dashes": "{day2}-{month2}-{year}",  # 23-11-2026
    "unpadded_day_month_year_dots": "{day}.{month_number}.{year}",  # 3.1.2026
    "day_month_short_year_slashes": "{day2}/{month2}/{yy}",  # 23/11/26
    "spaced_day_month_year_slashes": "{day} / {month_number} / {year}",  # 23 / 11 / 2026
    "unpadded_year_month_day_slashes": "{year}/{month_number}/{day}",  # 2026/1/3
    "unpadded_year_month_day_dashes": "{year}-{month_number}-{day}",  # 2026-1-3
    "chinese_digits": "{year}年{month_number}月{day}日",  # 2026年11月23日
    "chinese_short_year": "{yy}年{month_number}月{day}日",  # 26年11月23日
    "chinese_numerals": "{cn_year}年{cn_month}月{cn_day}日",  # 二〇二六年十一月二十三日
    "chinese_digits_weekday": "{year}年{month_number}月{day}日星期{cn_weekday}",
    "chinese_weekday_digits": "周{cn_weekday} {year}年{month_number}月{day}日",
    "chinese_digits_bracketed_weekday": "{year}年{month_number}月{day}日（周{cn_weekday}）",
    "chinese_numerals_weekday": "{cn_year}年{cn_month}月{cn_day}日星期{cn_weekday}",
    "chinese_weekday_numerals": "星期{cn_weekday} {cn_year}年{cn_month}月{cn_day}日",
    "chinese_padded_digits": "{year}年{month2}月{day2}日",  # 2026年01月03日
    "chinese_zero_numerals": "{cn_year_zero}年{cn_month}月{cn_day}日",  # 二零二六年十一月二十三日
    "chinese_digits_hao": "{year}年{month_number}月{day}号",  # 2026年11月23号
}
HELDOUT_FORMATS: dict[str, str] = {
    "the_ordinal_of_month_comma_year": "the {ordinal} of {month}, {year}",
    "dotted_abbreviation_ordinal_apostrophe_year": "{mon_dot} {ordinal} '{yy}",  # nov. 23rd '26
    "short_weekday_day_month_year_dashes": "{wkd} {day2}-{month2}-{year}",  # mon 23-11-2026
    "year_month_day_dots": "{year}.{month2}.{day2}",  # 2026.11.23
    "chinese_weekday_prefix_digits": "星期{cn_weekday} {year}年{month_number}月{day}日",
}


def ordinal(number: int) -> str:
    """1 -> "1st", 2 -> "2nd", 3 -> "3rd", 11 -> "11th", 22 -> "22nd"."""
    if 11 <= number % 100 <= 13:
        return f"{number}th"
    return f"{number}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(number % 10, 'th') }"


def fields(day: date) -> dict[str, str]:
    """What a template names: 2026-01-03 (a Saturday) has day "3", day2 "03", ordinal "3rd",
    month "january", mon "jan", mon_dot "jan.", month_number "1", month2 "01", year "2026",
    yy "26", weekday "saturday", wkd "sat", cn_year "二〇二六", cn_year_zero "二零二六",
    cn_month "一", cn_day "三", cn_weekday "六"."""
    year = "".join(CHINESE_YEAR_DIGITS[int(digit)] for digit in str(day.year))
    return {
        "day": str(day.day),
        "day2": f"{day.day:02d}",
        "ordinal": ordinal(day.day),
        "month": MONTHS[day.month - 1],
        "mon": MONTHS[day.month - 1][:3],
        "mon_dot": DOTTED_MONTHS[day.month - 1],
        "month_number": str(day.month),
        "month2": f"{day.month:02d}",
        "year": str(day.year),
        "yy": f"{day.year % 100:02d}",
        "weekday": WEEKDAYS[day.weekday()],
        "wkd": WEEKDAYS[day.weekday()][:3],
        "cn_year": year,
        "cn_year_zero": year.replace("〇", "零"),
        "cn_month": chinese_words(day.month),
        "cn_day": chinese_words(day.day),
        "cn_weekday": CHINESE_WEEKDAYS[day.weekday()],
    }


NAMES = frozenset(name[:length] for name in MONTHS + WEEKDAYS for length in (3, None)) | frozenset(
    month.rstrip(".") for month in DOTTED_MONTHS
)


def _capitalise_name(word: re.Match[str]) -> str:
    text = word.group()
    return text.capitalize() if text in NAMES or word.start() == 0 else text


def apply_case(text: str, case: str) -> str:
    """ "lower" keeps a template's text, "title" capitalises the month and weekday names and
    a word that starts the text ("The 23rd of November 2026", "Sept. 3, 2026"), "upper"
    upper-cases every letter ("23RD")."""
    if case == "lower":
        return text
    if case == "title":
        return re.sub(r"\b[a-z]+\b", _capitalise_name, text)
    if case == "upper":
        return text.upper()
    raise ValueError(f"case {case!r} is not one of {', '.join(CASES)}")


def render(day: date, template: str, case: str = "lower", spacing: str = "single") -> str:
    """``day`` written by ``template`` (a value of FORMATS or HELDOUT_FORMATS) in ``case``
    (one of CASES) and ``spacing`` (one of SPACINGS: "double" doubles every space)."""
    if spacing not in SPACINGS:
        raise ValueError(f"spacing {spacing!r} is not one of {', '.join(SPACINGS)}")
    text = apply_case(template.format(**fields(day)), case)
    return text.replace(" ", "  ") if spacing == "double" else text


def date_splits(seed: int, train: int, val: int, test: int) -> dict[str, list[tuple[str, str]]]:
    """(written date, ISO date) pairs for "train", "val", "test" and "heldout_formats",
    deterministic for a seed.

    One example per calendar date: a seeded permutation of the 36525 dates gives test the
    first ``test`` dates, validation the next ``val`` and training the next ``train``, so no
    date of validation or test appears in training in any format (and the test dates of a
    seed, nor their formats, change with ``train`` and ``val``). Each example draws its
    template uniformly from FORMATS, its case uniformly from CASES (the case changes only
    templates with Latin letters) and its spacing from SPACINGS (DOUBLE_SPACING_SHARE
    doubled). "heldout_formats" writes the test dates again, each in a template drawn
    uniformly from HELDOUT_FORMATS, with the test example's case and spacing.
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
    spacings = rng.random(DAY_COUNT) < DOUBLE_SPACING_SHARE
    heldout = rng.integers(len(HELDOUT_FORMATS), size=DAY_COUNT)
    templates, heldout_templates = list(FORMATS.values()), list(HELDOUT_FORMATS.values())
    pairs, heldout_pairs = [], []
    for index, offset in enumerate(offsets[:total]):
        day = FIRST_DAY + timedelta(days=int(offset))
        case, spacing = CASES[cases[index]], SPACINGS[int(spacings[index])]
        pairs.append((render(day, templates[formats[index]], case, spacing), day.isoformat()))
        if index < test:
            written = render(day, heldout_templates[heldout[index]], case, spacing)
            heldout_pairs.append((written, day.isoformat()))
    splits, start = {}, 0
    for split, size in sizes.items():
        splits[split] = pairs[start : start + size]
        start += size
    return {split: splits[split] for split in ("train", "val", "test")} | {
        "heldout_formats": heldout_pairs
    }
