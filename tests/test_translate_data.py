"""Translation data (no TensorFlow): numbers in words, written dates -> ISO, and the
Tatoeba/Anki sentence-pair loader with its filters and its refusals of malformed files."""

from __future__ import annotations

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

# 2026-11-23, a Monday, in every format (lower case, as the formatters write it).
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
    "chinese_digits": "2026年11月23日",
    "chinese_short_year": "26年11月23日",
    "chinese_numerals": "二〇二六年十一月二十三日",
    "chinese_digits_weekday": "2026年11月23日星期一",
    "chinese_weekday_digits": "周一 2026年11月23日",
    "chinese_digits_bracketed_weekday": "2026年11月23日（周一）",
    "chinese_numerals_weekday": "二〇二六年十一月二十三日星期一",
    "chinese_weekday_numerals": "星期一 二〇二六年十一月二十三日",
}

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


def every_rendering(day: date):
    for formatter in dates.FORMATS:
        for case in dates.CASES:
            yield formatter.__name__, case, dates.render(day, formatter, case)


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
    assert [formatter.__name__ for formatter in dates.FORMATS] == list(MONDAY_23_NOVEMBER_2026)
    for formatter in dates.FORMATS:
        assert formatter(monday) == MONDAY_23_NOVEMBER_2026[formatter.__name__]
        assert formatter.__doc__.startswith(formatter(monday))
    assert dates.render(monday, dates.weekday_the_ordinal_of_month_year, "title") == (
        "Monday the 23rd of November 2026"
    )
    assert dates.render(monday, dates.short_weekday_day_abbreviation_year, "title") == (
        "Mon 23 Nov 2026"
    )
    assert dates.render(monday, dates.month_ordinal_year, "upper") == "NOVEMBER 23RD, 2026"
    assert dates.render(monday, dates.chinese_numerals, "upper") == "二〇二六年十一月二十三日"


@pytest.mark.parametrize(
    ("day", "formatter", "expected"),
    [
        (date(2001, 1, 1), dates.month_ordinal_year, "january 1st, 2001"),
        (
            date(1999, 12, 31),
            dates.weekday_the_ordinal_of_month_year,
            "friday the 31st of december 1999",
        ),
        (date(2012, 2, 22), dates.ordinal_month_year, "22nd february 2012"),
        (date(1950, 3, 3), dates.ordinal_of_month_year, "3rd of march 1950"),
        (date(2013, 3, 13), dates.month_ordinal_year, "march 13th, 2013"),
        (date(2011, 4, 11), dates.ordinal_month_year, "11th april 2011"),
        (date(2012, 5, 12), dates.ordinal_month_year, "12th may 2012"),
        (date(2004, 7, 4), dates.ordinal_month_year, "4th july 2004"),
        (date(2049, 12, 31), dates.abbreviation_day_short_year, "dec 31, 49"),
        (date(1950, 1, 1), dates.day_month_short_year_dashes, "01-01-50"),
        (date(2005, 3, 7), dates.unpadded_day_month_year_slashes, "7/3/2005"),
        (date(2005, 3, 7), dates.day_month_year_slashes, "07/03/2005"),
        (date(2000, 10, 10), dates.chinese_numerals, "二〇〇〇年十月十日"),
        (date(1987, 1, 31), dates.chinese_numerals_weekday, "一九八七年一月三十一日星期六"),
        (date(2024, 9, 1), dates.chinese_weekday_digits, "周日 2024年9月1日"),
        (date(2009, 6, 20), dates.chinese_short_year, "09年6月20日"),
    ],
)
def test_hand_checked_dates(day, formatter, expected):
    assert formatter(day) == expected


def test_weekdays_count_from_a_known_monday():
    monday = date(2026, 11, 23)
    for offset in range(-27000, 8500, 37):
        day = monday + timedelta(days=offset)
        english = dates.WEEKDAYS[offset % 7]
        chinese = "一二三四五六日"[offset % 7]
        assert dates.weekday_month_day_year(day).startswith(f"{english}, ")
        assert dates.short_weekday_day_abbreviation_year(day).startswith(english[:3])
        assert dates.chinese_digits_weekday(day).endswith(f"星期{chinese}")
        assert dates.chinese_weekday_digits(day).startswith(f"周{chinese} ")


def test_each_written_date_means_one_day_and_fits_the_longest_source():
    rng = np.random.default_rng(0)
    offsets = [*rng.choice(dates.DAY_COUNT, 1500, replace=False), 0, dates.DAY_COUNT - 1]
    meaning: dict[str, date] = {}
    for offset in offsets:
        day = dates.FIRST_DAY + timedelta(days=int(offset))
        for name, case, text in every_rendering(day):
            assert meaning.setdefault(text, day) == day, (name, case, text)
            assert len(text) <= dates.LONGEST_SOURCE
    longest = date(2026, 9, 23)  # a Wednesday in September
    assert len(dates.weekday_the_ordinal_of_month_year(longest)) == dates.LONGEST_SOURCE == 36


def test_date_splits_are_disjoint_seeded_and_targets_are_iso():
    splits = dates.date_splits(7, train=2000, val=200, test=300)
    assert [len(splits[split]) for split in ("train", "val", "test")] == [2000, 200, 300]
    days = {split: {target for _, target in pairs} for split, pairs in splits.items()}
    assert len(days["train"] | days["val"] | days["test"]) == 2500  # one example per date
    renderings_used = set()
    for source, target in [pair for pairs in splits.values() for pair in pairs]:
        day = date.fromisoformat(target)
        assert dates.FIRST_DAY <= day <= dates.LAST_DAY
        renderings = {text: name for name, _, text in every_rendering(day)}
        assert source in renderings, source
        renderings_used.add(renderings[source])
    assert len(renderings_used) == len(dates.FORMATS)
    assert dates.date_splits(7, 2000, 200, 300) == splits
    assert dates.date_splits(7, 50, 10, 300)["test"] == splits["test"]
    assert dates.date_splits(8, 2000, 200, 300)["test"] != splits["test"]


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
