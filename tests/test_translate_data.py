"""Translation data (no TensorFlow): numbers in words, written dates -> ISO, and the
Tatoeba/Anki sentence-pair loader with its filters and its refusals of malformed files."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import date, timedelta

import numpy as np
import pytest

from keras_rnn.errors import UserError
from keras_rnn.tasks.translate import dates, numbers
from keras_rnn.tasks.translate.pairs import (
    COURSE_PREFIXES,
    count_tokens,
    normalize_english,
    read_pairs,
)
from tests.conftest import REPO

NUMBER_WORDS = {
    0: ("zero", "零"),
    7: ("seven", "七"),
    10: ("ten", "十"),
    11: ("eleven", "十一"),
    15: ("fifteen", "十五"),
    20: ("twenty", "二十"),
    21: ("twenty-one", "二十一"),
    99: ("ninety-nine", "九十九"),
    100: ("one hundred", "一百"),
    101: ("one hundred and one", "一百零一"),
    110: ("one hundred and ten", "一百一十"),
    999: ("nine hundred and ninety-nine", "九百九十九"),
    1000: ("one thousand", "一千"),
    1001: ("one thousand and one", "一千零一"),
    1010: ("one thousand and ten", "一千零一十"),
    10005: ("ten thousand and five", "一万零五"),
    10010: ("ten thousand and ten", "一万零一十"),
    100000: ("one hundred thousand", "十万"),
    100100: ("one hundred thousand one hundred", "十万零一百"),
    110000: ("one hundred and ten thousand", "十一万"),
    321405: ("three hundred and twenty-one thousand four hundred and five", "三十二万一千四百零五"),
    1000000: ("one million", "一百万"),
    1234567: (
        "one million two hundred and thirty-four thousand five hundred and sixty-seven",
        "一百二十三万四千五百六十七",
    ),
    10000000: ("ten million", "一千万"),
    10001000: ("ten million one thousand", "一千万一千"),
    100000005: ("one hundred million and five", "一亿零五"),
    100005000: ("one hundred million five thousand", "一亿零五千"),
    321000005: ("three hundred and twenty-one million and five", "三亿二千一百万零五"),
    10**9: ("one billion", "十亿"),
    1000010000: ("one billion ten thousand", "十亿零一万"),
    200000000000: ("two hundred billion", "二千亿"),
    999999999999: (
        "nine hundred and ninety-nine billion nine hundred and ninety-nine million nine hundred "
        "and ninety-nine thousand nine hundred and ninety-nine",
        "九千九百九十九亿九千九百九十九万九千九百九十九",
    ),
}

# 2026-11-23, a Monday, in every format (lower case, as the templates write it).
MONDAY_23_NOVEMBER_2026 = {
    "day_month_year": "23 november 2026",
    "day_abbreviation_year": "23 nov 2026",
    "month_day_year": "november 23, 2026",
    "abbreviation_day_short_year": "nov 23, 26",
    "month_ordinal_year": "november 23rd, 2026",
    "ordinal_of_month_year": "23rd of november 2026",
    "ordinal_month_year": "23rd november 2026",
    "weekday_month_day_year": "monday, november 23, 2026",
    "weekday_the_ordinal_of_month_year": "monday the 23rd of november 2026",
    "short_weekday_day_abbreviation_year": "mon 23 nov 2026",
    "weekday_day_month_year_slashes": "monday 23/11/2026",
    "day_abbreviation_year_dashes": "23-nov-2026",
    "day_month_year_dots": "23.11.2026",
    "day_month_short_year_dots": "23.11.26",
    "day_month_year_slashes": "23/11/2026",
    "unpadded_day_month_year_slashes": "23/11/2026",
    "day_month_short_year_dashes": "23-11-26",
    "year_month_day_slashes": "2026/11/23",
    "year_month_day_dashes": "2026-11-23",
    "year_month_day_compact": "20261123",
    "month_day_year_no_comma": "november 23 2026",
    "month_ordinal_year_no_comma": "november 23rd 2026",
    "day_month_comma_year": "23 november, 2026",
    "the_ordinal_of_month_year": "the 23rd of november 2026",
    "dotted_abbreviation_day_year": "nov. 23, 2026",
    "day_dotted_abbreviation_year": "23 nov. 2026",
    "abbreviation_day_apostrophe_year": "nov 23, '26",
    "day_abbreviation_apostrophe_year": "23 nov '26",
    "weekday_day_month_year": "monday, 23 november 2026",
    "short_weekday_abbreviation_day_year": "mon, nov 23, 2026",
    "dotted_short_weekday_ordinal_year": "mon. 23rd nov. 2026",
    "day_month_year_dashes": "23-11-2026",
    "unpadded_day_month_year_dots": "23.11.2026",
    "day_month_short_year_slashes": "23/11/26",
    "spaced_day_month_year_slashes": "23 / 11 / 2026",
    "unpadded_year_month_day_slashes": "2026/11/23",
    "unpadded_year_month_day_dashes": "2026-11-23",
    "chinese_digits": "2026年11月23日",
    "chinese_short_year": "26年11月23日",
    "chinese_numerals": "二〇二六年十一月二十三日",
    "chinese_digits_weekday": "2026年11月23日星期一",
    "chinese_weekday_digits": "周一 2026年11月23日",
    "chinese_digits_bracketed_weekday": "2026年11月23日（周一）",
    "chinese_numerals_weekday": "二〇二六年十一月二十三日星期一",
    "chinese_weekday_numerals": "星期一 二〇二六年十一月二十三日",
    "chinese_padded_digits": "2026年11月23日",
    "chinese_zero_numerals": "二零二六年十一月二十三日",
    "chinese_digits_hao": "2026年11月23号",
}
HELDOUT_MONDAY = {
    "the_ordinal_of_month_comma_year": "the 23rd of november, 2026",
    "dotted_abbreviation_ordinal_apostrophe_year": "nov. 23rd '26",
    "short_weekday_day_month_year_dashes": "mon 23-11-2026",
    "year_month_day_dots": "2026.11.23",
    "chinese_weekday_prefix_digits": "星期一 2026年11月23日",
}
EVERY_FORMAT = dates.FORMATS | dates.HELDOUT_FORMATS

ANKI_LINES = [
    "Go.\t去。\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #333147 (Kaiser)",
    "I'm sad.\t我很难过。",
    "He's a good boy.\t他是个好男孩。\tCC-BY 2.0 (France) Attribution: tatoeba.org",
    "",
    "You're late again today.\t你今天又迟到了。\tCC-BY 2.0 (France)",
    "We are going to the park after school today.\t我们今天放学后去公园。\tCC-BY 2.0",
]


def write(tmp_path, text: str | bytes, name: str = "cmn.txt"):
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


def every_rendering(day: date, formats: dict[str, str] = dates.FORMATS):
    """(format name, case, spacing, text) of each way ``formats`` write ``day``."""
    for name, template in formats.items():
        for case in dates.CASES:
            for spacing in dates.SPACINGS:
                yield name, case, spacing, dates.render(day, template, case, spacing)


def chinese_number(text: str) -> int:
    """Chinese numerals below 100 ("二十三" -> 23), or digit by digit ("二〇二六" -> 2026)."""
    digits = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"零": 0}
    if "十" in text:
        tens, _, units = text.partition("十")
        return 10 * (digits[tens] if tens else 1) + (digits[units] if units else 0)
    return int("".join(str(digits[c]) for c in text))


def full_year(text: str) -> int:
    """A year of four digits, or of two with the century pivot 50: "49" -> 2049, "50" -> 1950."""
    year = int(text)
    if len(text) == 2:
        return year + (2000 if year < 50 else 1900)
    assert len(text) == 4, text
    return year


def parse_written_date(text: str) -> date:
    """The date ``text`` denotes, read by rules written apart from the generator: Chinese
    year 年 month 月 day 日/号; otherwise a month name (full, three letters, or "sept")
    between a day (before it, or after it with a month-first order) and the year that
    follows; or three numbers, year first when it has four digits, else day-month-year; or
    eight digits, YYYYMMDD. A weekday, ordinal suffix or Chinese weekday must be right."""
    text = text.lower()
    weekday = re.search(r"(?:星期|周)([一二三四五六日])", text)
    if "年" in text:
        year, month, day = re.fullmatch(
            r"(?:星期. +|周. +)?(\S+?)年(\S+?)月(\S+?)[日号](?:星期.|（周.）)?", text
        ).groups()
        numbers = [int(n) if n.isdigit() else chinese_number(n) for n in (year, month, day)]
        found = date(full_year(year) if year.isdigit() else numbers[0], numbers[1], numbers[2])
        if weekday:
            assert "一二三四五六日".index(weekday.group(1)) == found.weekday(), text
        return found
    words = re.findall(r"[a-z]+", text)
    names = [w for w in words if w not in ("st", "nd", "rd", "th", "the", "of")]
    for number, suffix in re.findall(r"(\d+)(st|nd|rd|th)", text):
        assert dates.ordinal(int(number)) == number + suffix, text
    numbers = re.findall(r"\d+", text)
    months = [
        i
        for i, month in enumerate(dates.MONTHS, 1)
        for w in names
        if w in (month, month[:3]) or w == month[:4] == "sept"
    ]
    weekdays = [i for i, d in enumerate(dates.WEEKDAYS) for w in names if w in (d, d[:3])]
    assert len(names) == len(months) + len(weekdays) and len(months) <= 1, text
    if months:
        day, year = numbers
        found = date(full_year(year), months[0], int(day))
    elif len(numbers) == 1:
        found = date(int(numbers[0][:4]), int(numbers[0][4:6]), int(numbers[0][6:]))
    elif len(numbers[0]) == 4:
        found = date(int(numbers[0]), int(numbers[1]), int(numbers[2]))
    else:
        found = date(full_year(numbers[2]), int(numbers[1]), int(numbers[0]))
    assert weekdays in ([], [found.weekday()]), text
    return found


@pytest.mark.parametrize("number", NUMBER_WORDS)
def test_numbers_in_english_and_chinese_words(number):
    assert (numbers.english_words(number), numbers.chinese_words(number)) == NUMBER_WORDS[number]


def test_numbers_outside_the_range_are_refused():
    for number in (-1, 10**12):
        with pytest.raises(ValueError, match="outside"):
            numbers.english_words(number)
        with pytest.raises(ValueError, match="outside"):
            numbers.chinese_words(number)


def test_number_splits_are_disjoint_seeded_and_spread_in_length():
    splits = numbers.number_splits(3, 1200, 100, 100, language="english")
    assert {split: len(pairs) for split, pairs in splits.items()} == {
        "train": 1200,
        "val": 100,
        "test": 100,
    }
    values = {split: {int(target) for _, target in pairs} for split, pairs in splits.items()}
    assert sum(map(len, values.values())) == 1400  # every example has its own number
    for source, target in splits["train"] + splits["test"]:
        assert source == numbers.english_words(int(target))
    lengths = [len(source) for pairs in splits.values() for source, _ in pairs]
    assert min(lengths) <= 10 and max(lengths) >= 120
    digit_counts = np.bincount([len(target) for _, target in splits["train"]], minlength=13)[1:]
    assert digit_counts[0] <= 10 and digit_counts[3:].min() > 60  # uniform once 1-3 are used up
    assert numbers.number_splits(3, 1200, 100, 100, language="english") == splits
    assert numbers.number_splits(4, 1200, 100, 100, language="english")["test"] != splits["test"]


def test_number_splits_mix_languages():
    splits = numbers.number_splits(0, 300, 0, 0)
    assert splits["val"] == splits["test"] == []
    chinese = [source for source, _ in splits["train"] if not source.isascii()]
    assert 100 < len(chinese) < 200
    for source, target in splits["train"]:
        words = numbers.chinese_words if source in chinese else numbers.english_words
        assert source == words(int(target))
    with pytest.raises(UserError, match="'french' is not one of english, chinese, both"):
        numbers.number_splits(0, 10, 0, 0, language="french")


def test_every_format_renders_a_known_monday():
    monday = date(2026, 11, 23)
    assert list(dates.FORMATS) == list(MONDAY_23_NOVEMBER_2026)
    assert list(dates.HELDOUT_FORMATS) == list(HELDOUT_MONDAY)
    for name, template in EVERY_FORMAT.items():
        assert dates.render(monday, template) == (MONDAY_23_NOVEMBER_2026 | HELDOUT_MONDAY)[name]
    assert dates.render(monday, dates.FORMATS["weekday_the_ordinal_of_month_year"], "title") == (
        "Monday the 23rd of November 2026"
    )
    assert dates.render(monday, dates.FORMATS["short_weekday_day_abbreviation_year"], "title") == (
        "Mon 23 Nov 2026"
    )
    assert dates.render(monday, dates.FORMATS["month_ordinal_year"], "upper") == (
        "NOVEMBER 23RD, 2026"
    )
    assert (
        dates.render(monday, dates.FORMATS["chinese_numerals"], "upper")
        == "二〇二六年十一月二十三日"
    )
    assert dates.render(monday, dates.FORMATS["day_month_year"], "lower", "double") == (
        "23  november  2026"
    )
    with pytest.raises(ValueError, match="spacing 'triple' is not one of single, double"):
        dates.render(monday, dates.FORMATS["day_month_year"], "lower", "triple")


@pytest.mark.parametrize(
    ("day", "name", "case", "expected"),
    [
        (date(2001, 1, 1), "month_ordinal_year", "lower", "january 1st, 2001"),
        (
            date(1999, 12, 31),
            "weekday_the_ordinal_of_month_year",
            "lower",
            "friday the 31st of december 1999",
        ),
        (date(2012, 2, 22), "ordinal_month_year", "lower", "22nd february 2012"),
        (date(1950, 3, 3), "ordinal_of_month_year", "lower", "3rd of march 1950"),
        (date(2013, 3, 13), "month_ordinal_year", "lower", "march 13th, 2013"),
        (date(2011, 4, 11), "ordinal_month_year", "lower", "11th april 2011"),
        (date(2012, 5, 12), "ordinal_month_year", "lower", "12th may 2012"),
        (date(2004, 7, 4), "ordinal_month_year", "lower", "4th july 2004"),
        (date(2049, 12, 31), "abbreviation_day_short_year", "lower", "dec 31, 49"),
        (date(1950, 1, 1), "day_month_short_year_dashes", "lower", "01-01-50"),
        (date(2005, 3, 7), "unpadded_day_month_year_slashes", "lower", "7/3/2005"),
        (date(2005, 3, 7), "day_month_year_slashes", "lower", "07/03/2005"),
        (date(2000, 10, 10), "chinese_numerals", "lower", "二〇〇〇年十月十日"),
        (date(1987, 1, 31), "chinese_numerals_weekday", "lower", "一九八七年一月三十一日星期六"),
        (date(2024, 9, 1), "chinese_weekday_digits", "lower", "周日 2024年9月1日"),
        (date(2009, 6, 20), "chinese_short_year", "lower", "09年6月20日"),
        (date(2021, 3, 3), "the_ordinal_of_month_year", "title", "The 3rd of March 2021"),
        (date(2021, 3, 3), "unpadded_year_month_day_slashes", "lower", "2021/3/3"),
        (date(2021, 9, 3), "dotted_abbreviation_day_year", "title", "Sept. 3, 2021"),
        (date(2021, 5, 3), "day_dotted_abbreviation_year", "title", "3 May 2021"),
        (date(1999, 3, 2), "abbreviation_day_apostrophe_year", "upper", "MAR 2, '99"),
        (date(2005, 6, 1), "day_abbreviation_apostrophe_year", "lower", "1 jun '05"),
        (date(2021, 3, 3), "dotted_short_weekday_ordinal_year", "title", "Wed. 3rd Mar. 2021"),
        (date(2021, 3, 3), "chinese_padded_digits", "lower", "2021年03月03日"),
        (date(2000, 10, 10), "chinese_zero_numerals", "lower", "二零零零年十月十日"),
        (date(2021, 9, 3), "dotted_abbreviation_ordinal_apostrophe_year", "lower", "sept. 3rd '21"),
        (date(2021, 3, 3), "the_ordinal_of_month_comma_year", "upper", "THE 3RD OF MARCH, 2021"),
    ],
)
def test_hand_checked_dates(day, name, case, expected):
    assert dates.render(day, EVERY_FORMAT[name], case) == expected
    assert parse_written_date(expected) == day


def test_weekdays_count_from_a_known_monday():
    monday = date(2026, 11, 23)
    for offset in range(-27000, 8500, 37):
        day = monday + timedelta(days=offset)
        english = dates.WEEKDAYS[offset % 7]
        chinese = "一二三四五六日"[offset % 7]
        written = {name: dates.render(day, template) for name, template in EVERY_FORMAT.items()}
        assert written["weekday_month_day_year"].startswith(f"{english}, ")
        assert written["short_weekday_day_abbreviation_year"].startswith(english[:3])
        assert written["chinese_digits_weekday"].endswith(f"星期{chinese}")
        assert written["chinese_weekday_digits"].startswith(f"周{chinese} ")
        assert written["chinese_weekday_prefix_digits"].startswith(f"星期{chinese} ")


def test_each_written_date_means_its_day_and_fits_the_longest_source():
    """Every rendering of every format, held-out ones included, parses back to its date,
    and no text means two days. The longest is 41 characters (docs/tasks/translate.md): lengths
    depend on day, month and weekday only, and days 21-27 of each month meet every weekday
    with the longest day numbers, so one year holds every maximum."""
    year = [date(2024, 1, 1) + timedelta(days) for days in range(366)]
    longest_source = max(
        len(dates.render(day, template, "lower", "double"))
        for template in EVERY_FORMAT.values()
        for day in year
    )
    rng = np.random.default_rng(0)
    offsets = [*rng.choice(dates.DAY_COUNT, 400, replace=False), 0, dates.DAY_COUNT - 1]
    meaning: dict[str, date] = {}
    for offset in offsets:
        day = dates.FIRST_DAY + timedelta(days=int(offset))
        for name, case, spacing, text in every_rendering(day, EVERY_FORMAT):
            assert meaning.setdefault(text, day) == day, (name, case, spacing, text)
            assert parse_written_date(text) == day, (name, case, spacing, text)
            assert len(text) <= longest_source
    longest = date(2026, 9, 23)  # a Wednesday in September
    longest_text = dates.render(
        longest, dates.FORMATS["weekday_the_ordinal_of_month_year"], "lower", "double"
    )
    assert len(longest_text) == longest_source == 41


def test_heldout_formats_never_write_what_a_training_format_writes():
    rng = np.random.default_rng(1)
    for offset in rng.choice(dates.DAY_COUNT, 400, replace=False):
        day = dates.FIRST_DAY + timedelta(days=int(offset))
        trained = {text for *_, text in every_rendering(day)}
        heldout = {text for *_, text in every_rendering(day, dates.HELDOUT_FORMATS)}
        assert not trained & heldout, (day, trained & heldout)


def test_date_splits_are_disjoint_seeded_and_targets_are_iso():
    splits = dates.date_splits(7, train=900, val=100, test=200)
    assert {split: len(pairs) for split, pairs in splits.items()} == {
        "train": 900,
        "val": 100,
        "test": 200,
        "heldout_formats": 200,
    }
    days = {split: {target for _, target in pairs} for split, pairs in splits.items()}
    assert len(days["train"] | days["val"] | days["test"]) == 1200  # one example per date
    assert [t for _, t in splits["heldout_formats"]] == [t for _, t in splits["test"]]
    used = {"trained": set(), "heldout": set()}
    for split, pairs in splits.items():
        formats = dates.HELDOUT_FORMATS if split == "heldout_formats" else dates.FORMATS
        for source, target in pairs:
            day = date.fromisoformat(target)
            assert dates.FIRST_DAY <= day <= dates.LAST_DAY
            assert parse_written_date(source) == day, source
            renderings = {text: name for name, *_, text in every_rendering(day, formats)}
            assert source in renderings, (split, source)  # so in no format of the other set
            used["heldout" if split == "heldout_formats" else "trained"].add(renderings[source])
    assert used == {"trained": set(dates.FORMATS), "heldout": set(dates.HELDOUT_FORMATS)}
    assert dates.date_splits(7, 900, 100, 200) == splits
    smaller = dates.date_splits(7, 50, 10, 200)
    assert (smaller["test"], smaller["heldout_formats"]) == (
        splits["test"],
        splits["heldout_formats"],
    )
    assert dates.date_splits(8, 900, 100, 200)["heldout_formats"] != splits["heldout_formats"]


def test_heldout_formats_use_only_characters_of_the_training_split():
    """With the default sizes, no held-out source holds a character training lacks: none
    becomes an unknown token."""
    splits = dates.date_splits(0, train=20000, val=1000, test=1000)
    trained = set("".join(source for source, _ in splits["train"]))
    assert set("".join(source for source, _ in splits["heldout_formats"])) <= trained
    assert set("".join(t for *_, t in every_rendering(date(2021, 9, 3), EVERY_FORMAT))) <= trained


def test_date_splits_refuse_more_examples_than_dates():
    with pytest.raises(UserError, match=r"need 36526 distinct dates, the range .* has 36525"):
        dates.date_splits(0, 36000, 326, 200)
    with pytest.raises(UserError, match="val examples must be 0 or more, not -1"):
        dates.date_splits(0, 10, -1, 10)


def test_read_pairs_reads_the_anki_format(tmp_path):
    path = write(tmp_path, "\ufeff" + "\r\n".join(ANKI_LINES) + "\r\n")
    pairs, dropped = read_pairs(path, max_words=None, prefixes=(), reverse=False)
    assert dropped == {"too_long": 0, "prefix": 0}
    assert pairs == [
        ("Go.", "去。"),
        ("I'm sad.", "我很难过。"),
        ("He's a good boy.", "他是个好男孩。"),
        ("You're late again today.", "你今天又迟到了。"),
        ("We are going to the park after school today.", "我们今天放学后去公园。"),
    ]
    reversed_pairs, _ = read_pairs(path, max_words=None, prefixes=(), reverse=True)
    assert reversed_pairs == [(target, source) for source, target in pairs]


def test_read_pairs_filters_and_counts_what_they_drop(tmp_path):
    path = write(tmp_path, "\n".join(ANKI_LINES))
    pairs, dropped = read_pairs(path, max_words=6, prefixes=COURSE_PREFIXES, reverse=True)
    assert pairs == [("我很难过。", "I'm sad."), ("他是个好男孩。", "He's a good boy.")]
    assert dropped == {"too_long": 2, "prefix": 1}
    # A token per Chinese character: 你今天又迟到了 is 7 > 4, though its English has 4 words.
    pairs, dropped = read_pairs(path, max_words=4, prefixes=(), reverse=False)
    assert [source for source, _ in pairs] == ["Go.", "I'm sad."]
    assert dropped == {"too_long": 3, "prefix": 0}
    pairs, dropped = read_pairs(path, max_words=None, prefixes=("we are",), reverse=False)
    assert len(pairs) == 1 and dropped == {"too_long": 0, "prefix": 4}


def test_tokens_and_english_keys():
    assert count_tokens("我爱你。") == 3
    assert count_tokens("Je t'aime !") == 2
    assert count_tokens("我有3个 apples") == 5
    assert normalize_english("I'm sorry.") == "i am sorry "
    assert normalize_english("He’s here, isn't he?") == "he is here is not he "
    assert normalize_english("You're right.").startswith(COURSE_PREFIXES)
    assert normalize_english("They're") == "they are "
    assert not normalize_english("Tom's here.").startswith(COURSE_PREFIXES)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("Go.\t去。\nHello\n", "cmn.txt:2: no tab: expected English<TAB>translation"),
        ("Go.\t去。\n\n\t你好。\n", "cmn.txt:3: the English sentence (field 1) is empty"),
        ("Go.\t去。\nHi.\t  \tCC-BY\n", "cmn.txt:2: the translation (field 2) is empty"),
        ("Go.\t去。\tCC\textra\n", "cmn.txt:1: 4 tab-separated fields"),
        (b"Go.\t\xe5\x8e\xbb\n\nHi.\t\xc4\xe3\xba\xc3\n", "cmn.txt:3: not UTF-8 text (byte 0xc4"),
        ("", "cmn.txt has no sentence pairs"),
        ("\ufeff\r\n\n", "cmn.txt has no sentence pairs"),
    ],
)
def test_read_pairs_refuses_malformed_files(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(UserError) as error:
        read_pairs(path, max_words=None, prefixes=(), reverse=False)
    assert message in str(error.value)
    assert str(error.value).startswith(str(path))


def test_read_pairs_refuses_a_missing_file_and_filters_that_drop_everything(tmp_path):
    with pytest.raises(UserError, match=r"pairs file not found: .*missing\.txt"):
        read_pairs(tmp_path / "missing.txt", max_words=None, prefixes=(), reverse=False)
    path = write(tmp_path, "\n".join(ANKI_LINES))
    with pytest.raises(UserError) as error:
        read_pairs(path, max_words=2, prefixes=("she is",), reverse=False)
    assert str(error.value) == (
        f"{path}: the filters dropped all 5 pairs: 4 longer than 2 words, "
        "1 not starting with one of the 1 prefixes"
    )


def test_the_data_modules_import_neither_tensorflow_nor_keras():
    check = (
        "import sys\n"
        "import keras_rnn.tasks.translate.dates, keras_rnn.tasks.translate.numbers\n"
        "import keras_rnn.tasks.translate.pairs\n"
        "assert not {'tensorflow', 'keras'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", check], cwd=REPO, check=True, timeout=60)
