"""Tokenization and token vocabularies: tensorflow-text (keras_rnn.text) and the TensorFlow-free
mirror (serving.runtime.text) give the same tokens; TokenVocabulary's ids and file."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from keras_rnn import text as tf_text
from serving.errors import UserError
from serving.runtime import text as py_text
from serving.runtime.vocab import (
    END,
    PAD,
    START,
    UNKNOWN,
    UNKNOWN_TOKEN,
    TokenVocabulary,
    Vocabulary,
)
from tests.conftest import BLOCKED_MODULES, REPO

CORPUS = [
    "Don't stop: it's 5 o'clock, isn't it? \"Yes!\" (she said) -- well-known; a/b & c+d=e.",
    "I'm sorry... We'll see; they've gone—haven't they?",
    "Café crème, naïve résumé, Ærøskøbing, STRASSE vs Straße, İstanbul, ΟΔΥΣΣΕΥΣ.",
    "e\u0301 composed by NFKC, \ufb01 ligature, \u00bd, x\u00b2, \u2163",
    "Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ　１２３！",
    "你好，世界！今天天气怎么样？我很好。",
    "《三体》的作者是刘慈欣；他说：“宇宙很大。”",
    "我有3个苹果和GPT-4o模型, 价格是12.5元",
    "2026年11月23日",
    "23.11.2026",
    "11/23/2026 at 10:30 a.m., 1,000,000 people",
    "日本語のテキスト、カタカナとひらがな。ｶﾀｶﾅ",
    "한국어 문장입니다.",
    "Emoji 😀👍🏽 ❤️ 👨\u200d👩\u200d👧 🇫🇷 1️⃣ done",
    "  extra   spaces\tand\ttabs\nnew\r\nlines\u00a0nbsp\u3000ideographic  ",
    "soft\u00adhyphen zero\u200bwidth",
    "¿Qué tal? ¡Muy bien! «Bonjour» l'eau",
    "$100 + €20 = ¥? 50% #1 @user <tag> |x| ~y `z` ^",
    "Привет, мир! Ёлка",
    "مرحبا بالعالم، كيف حالك؟",
    "नमस्ते दुनिया।",
    "",
]


@pytest.mark.parametrize("mode", py_text.MODES)
@pytest.mark.parametrize("text", CORPUS)
def test_both_sides_give_the_same_tokens(text, mode):
    assert tf_text.tokenize(text, mode) == py_text.tokenize(text, mode)


@pytest.mark.skipif(
    unicodedata.unidata_version != "14.0.0",
    reason="measured against Python 3.11's Unicode 14.0; later versions assign characters "
    "that tensorflow-text's RE2 may not know",
)
@pytest.mark.parametrize("mode", py_text.MODES)
def test_both_sides_agree_on_every_character_of_unicode_14(mode):
    chars = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    assert len(chars) > 280_000
    for start in range(0, len(chars), 4096):
        part = chars[start : start + 4096]
        tokens = tf_text.tokenize_tensor(tf.constant(part), mode).to_list()
        expected = [[t.encode() for t in py_text.tokenize(char, mode)] for char in part]
        assert tokens == expected


def test_batched_tokens_in_a_dataset():
    dataset = tf.data.Dataset.from_tensor_slices(CORPUS).map(
        lambda s: tf_text.tokenize_tensor(s, "words")
    )
    for text, tokens in zip(CORPUS, dataset, strict=True):
        assert [t.decode() for t in tokens.numpy()] == py_text.tokenize(text, "words")
    assert tf_text.tokenize_batch(CORPUS, "words") == [
        py_text.tokenize(text, "words") for text in CORPUS
    ]
    assert tf_text.tokenize_batch([], "words") == []
    batch = tf_text.tokenize_tensor(tf.constant([CORPUS[:2], CORPUS[2:4]]), "characters")
    assert batch.shape[:2] == [2, 2]
    assert [t.decode() for t in batch[1, 0].numpy()] == py_text.tokenize(CORPUS[2], "characters")


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Don't stop, Café!", ["don", "'", "t", "stop", ",", "café", "!"]),
        ("2026年11月23日", ["2026", "年", "11", "月", "23", "日"]),
        ("23.11.2026", ["23", ".", "11", ".", "2026"]),
        ("你好，世界！", ["你", "好", ",", "世", "界", "!"]),
        ("《三体》。", ["《", "三", "体", "》", "。"]),
        ("Ｆｕｌｌ－ｗｉｄｔｈ　１２３", ["full", "-", "width", "123"]),
        ("STRASSE Straße İ", ["strasse", "strasse", "i\u0307"]),
        ("GPT-4o模型", ["gpt", "-", "4o", "模", "型"]),
        ("カタカナ ｶﾀｶﾅ", ["カ", "タ", "カ", "ナ", "カ", "タ", "カ", "ナ"]),
        ("😀👍🏽 a❤️b", ["😀", "👍", "🏽", "a", "❤", "b"]),
        ("soft\u00adhyphen zero\u200bwidth", ["softhyphen", "zerowidth"]),
        (" \t a\r\n\u00a0b\u3000 ", ["a", "b"]),
        ("", []),
    ],
)
def test_words(text, tokens):
    assert py_text.tokenize(text, "words") == tokens


def test_characters_are_nfkc_code_points_spaces_included():
    assert py_text.tokenize("Ａb é\t你！", "characters") == ["A", "b", " ", "é", "\t", "你", "!"]
    assert py_text.tokenize("", "characters") == []


@pytest.mark.parametrize(
    ("text", "detokenized"),
    [
        ("Don't stop, Café! (Really)", "don't stop, café! (really)"),
        ('He said "hi." Then "bye"', 'he said "hi." then "bye"'),
        ("ISO: 2026-11-23, 23.11.2026", "iso: 2026-11-23, 23.11.2026"),
        ("10:30, 1,000 and 3.5; x_y", "10:30, 1,000 and 3.5; x_y"),
        ("1, 2, 3", "1, 2, 3"),
        ("你好，世界！", "你好,世界!"),
        ("我有3个苹果。", "我有3个苹果。"),
        ("2026年11月23日", "2026年11月23日"),
        ("《三体》的作者是刘慈欣", "《三体》的作者是刘慈欣"),
        ("¿Qué tal? ¡Bien! «Oui» l'eau", "¿qué tal? ¡bien! «oui» l'eau"),
        ("a + b = 5%", "a + b = 5%"),
    ],
)
def test_words_detokenize(text, detokenized):
    assert py_text.detokenize(py_text.tokenize(text, "words"), "words") == detokenized
    assert tf_text.detokenize is py_text.detokenize


@pytest.mark.parametrize("mode", py_text.MODES)
@pytest.mark.parametrize("text", CORPUS)
def test_detokenized_text_gives_the_same_tokens(text, mode):
    tokens = py_text.tokenize(text, mode)
    assert py_text.tokenize(py_text.detokenize(tokens, mode), mode) == tokens


# Token rows for detokenize_tensor and what serving.runtime.text.detokenize makes of them in
# "words" mode, a few for each rule of its _space_between. One batch: the '"' count restarts
# with each row (rows with an odd count come before others).
DETOKENIZE_CASES = [
    # CJK ideographs and kana on either side, one token each (a longer token is no ideograph)
    (["我", "有", "3", "个", "苹", "果", "。"], "我有3个苹果。"),
    (["gpt", "-", "4o", "模", "型", "a"], "gpt-4o模型a"),
    (["好", "。", "a", "カ", "ナ", "x"], "好。 aカナx"),
    (["𠀀", "a", "々", "b"], "𠀀a々b"),
    (["日本", "a", "b", "日本"], "日本 a b 日本"),
    # closing and other punctuation (Pe, Pf, Po) gets no space before it, opening (Ps, Pi) none
    # after; symbols are spaced like words
    (["(", "a", ")", "b", "[", "x", "]", "{", "y", "}"], "(a) b [x] {y}"),
    (["a", ",", "b", ".", "c", "!", "?", "d", ";", "e", "…"], "a, b. c!? d; e…"),
    (["“", "a", "”", "b", "«", "oui", "»", "‘", "c", "’"], "“a” b «oui» ‘c’"),
    (["a", "%", "$", "5", "+", "b", "=", "c", "&", "d"], "a% $ 5 + b = c& d"),
    (["a", "''", "b", "(", "(", "c", ")", ")"], "a '' b ((c))"),
    # ¿ and ¡ (Po) open
    (["¿", "qué", "tal", "?", "¡", "muy", "bien", "!", "a", "¿", "b"], "¿qué tal? ¡muy bien! a ¿b"),
    # dashes and connectors (Pd, Pc): no space on either side
    (
        ["well", "-", "known", "x", "_", "y", "a", "—", "b", "c", "-", "-", "d"],
        "well-known x_y a—b c--d",
    ),
    (["(", "-", ")", "3", "-", "4", "《", "_"], "(-) 3-4 《_"),
    # '"' opens after an even number of them and closes after an odd one
    (["he", "said", '"', "hi"], 'he said "hi'),
    (['"', "hi", '"', "bye"], '"hi" bye'),
    (['"', "a", '"', "b", '"', "c"], '"a" b "c'),
    (["a", '"', '"', "b", '"', "(", '"'], 'a "" b "("'),
    (['"', "a", "."], '"a.'),
    # ' and ’ between two words (letters, digits, marks first) join them; elsewhere they are
    # other punctuation
    (["don", "'", "t", "l", "'", "eau", "it", "’", "s"], "don't l'eau it’s"),
    (["rock", "'", "n", "'", "roll", "1", "'", "2"], "rock'n'roll 1'2"),
    (["'", "tis", "dogs", "'", ",", "a", "'", "."], "' tis dogs', a'."),
    (["你", "'", "s", "a", "'", "你", "!", "'", "b"], "你' s a'你!' b"),
    (["x", "'", "-", "y", "é", "'", "ü"], "x'-y é'ü"),
    # '.' and ':' between two numbers, ',' between a number and three digits
    (["23", ".", "11", ".", "2026"], "23.11.2026"),
    (["10", ":", "30", "1", ";", "2"], "10:30 1; 2"),
    (["1", ",", "000", "1", ",", "00", "1", ",", "0000"], "1,000 1, 00 1, 0000"),
    (["1", ",", "000", ",", "000", "a", ".", "5", "3", ".", "5a"], "1,000,000 a. 5 3. 5a"),
    (["٣", ".", "١٤", "١", ",", "٠٠٠", "½", ".", "5", "１", ":", "２"], "٣.١٤ ١,٠٠٠ ½. 5 １:２"),
    (["5", ".", "a", ",", "000"], "5. a, 000"),
    # one token, none
    (["a"], "a"),
    ([], ""),
]


def ragged(rows: list[list[str]]) -> tf.RaggedTensor:
    """A [len(rows), None] string tensor (tf.ragged.constant needs a token to infer from)."""
    values = tf.constant([token for row in rows for token in row], tf.string)
    return tf.RaggedTensor.from_row_lengths(values, [len(row) for row in rows])


def detokenized(rows: list[list[str]], mode: str, function=None) -> list[str]:
    """detokenize_tensor's texts for ``rows`` (or ``function``'s, a graph of it for ``mode``)."""
    texts = function(ragged(rows)) if function else tf_text.detokenize_tensor(ragged(rows), mode)
    assert texts.dtype == tf.string and texts.shape == [len(rows)]
    return [text.decode() for text in texts.numpy()]


def test_detokenize_tensor_follows_every_rule():
    rows = [tokens for tokens, _ in DETOKENIZE_CASES]
    assert [py_text.detokenize(tokens, "words") for tokens in rows] == [
        text for _, text in DETOKENIZE_CASES
    ]
    assert detokenized(rows, "words") == [py_text.detokenize(row, "words") for row in rows]
    assert detokenized(rows, "characters") == ["".join(row) for row in rows]


@pytest.mark.parametrize("mode", py_text.MODES)
def test_detokenize_tensor_on_the_corpus(mode):
    rows = [py_text.tokenize(text, mode) for text in CORPUS]
    expected = [py_text.detokenize(row, mode) for row in rows]
    assert detokenized(rows, mode) == expected
    tokens = tf_text.tokenize_tensor(tf.constant(CORPUS), mode)  # translation's own pipeline
    assert [t.decode() for t in tf_text.detokenize_tensor(tokens, mode).numpy()] == expected


def test_detokenize_tensor_on_empty_rows():
    for mode in py_text.MODES:
        assert detokenized([["a", ","], [], ["b"]], mode) == ["a,", "", "b"]
        assert detokenized([[], []], mode) == ["", ""]
        assert detokenized([], mode) == []


@pytest.mark.skipif(
    unicodedata.unidata_version != "14.0.0", reason="RE2's categories measured against 14.0"
)
def test_detokenize_tensor_agrees_on_punctuation_and_numbers_of_unicode_14():
    """Every P* and N* character of Unicode 14.0 and every 101st other one, in each position
    _space_between looks at (left, right, before), equal to Python's categories."""
    chars = [chr(c) for c in range(0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    chars = [c for i, c in enumerate(chars) if unicodedata.category(c)[0] in "PN" or i % 101 == 0]
    assert len(chars) > 5000
    rows = [["a", c, "a", "'", c, "'", "a", "1", ".", c, ".", "1"] for c in chars]
    assert detokenized(rows, "words") == [py_text.detokenize(row, "words") for row in rows]


def test_detokenize_tensor_in_a_graph():
    signature = [tf.RaggedTensorSpec([None, None], tf.string)]
    functions = {
        mode: tf.function(lambda t, mode=mode: tf_text.detokenize_tensor(t, mode), signature)
        for mode in py_text.MODES
    }
    rows = [tokens for tokens, _ in DETOKENIZE_CASES]
    for mode, function in functions.items():
        for batch in (rows, [*rows[:3], []], [py_text.tokenize(text, mode) for text in CORPUS]):
            expected = [py_text.detokenize(row, mode) for row in batch]
            assert detokenized(batch, mode, function) == expected
        assert function.experimental_get_tracing_count() == 1
        graph = function.get_concrete_function().graph.as_graph_def()
        assert not {node.op for node in graph.node} & {"PyFunc", "EagerPyFunc"}


def test_a_mode_outside_modes_is_refused():
    for call in (py_text.tokenize, tf_text.tokenize, py_text.detokenize, tf_text.detokenize_tensor):
        with pytest.raises(ValueError, match="tokenization mode"):
            call("a", "bytes")
    with pytest.raises(ValueError, match="ragged"):
        tf_text.detokenize_tensor(tf.constant(["a", "b"]), "words")


def test_serving_tokenizes_without_tensorflow():
    script = (
        "import sys\n"
        f"for name in {BLOCKED_MODULES!r}:\n"
        "    sys.modules[name] = None\n"
        "from serving.runtime.text import tokenize, detokenize\n"
        "from serving.runtime.vocab import TokenVocabulary\n"
        "tokens = tokenize('Hello, 世界!', 'words')\n"
        "print(detokenize(tokens, 'words'), TokenVocabulary.from_counts({'a': 1}).size)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello,世界! 5\n"


def test_bleu_on_detokenized_text():
    import sacrebleu

    hypothesis = py_text.detokenize(py_text.tokenize("The cat sat on the mat.", "words"), "words")
    reference = py_text.detokenize(py_text.tokenize("the cat sat on the mat.", "words"), "words")
    assert sacrebleu.corpus_bleu([hypothesis], [[reference]]).score == pytest.approx(100)


COUNTS = Counter(["the", "cat", "sat", "on", "the", "mat", ".", "the", "end", "."])


def test_token_vocabulary_from_counts():
    vocab = TokenVocabulary.from_counts(COUNTS)
    assert vocab.tokens == ("", "", "", "", "the", ".", "cat", "end", "mat", "on", "sat")
    assert (PAD, UNKNOWN, START, END) == (0, 1, 2, 3) == tuple(range(TokenVocabulary.RESERVED))
    assert TokenVocabulary.build([["the", "cat", "sat"], ["on", "the", "mat", "."]]) == (
        TokenVocabulary.from_counts(Counter(["the", "cat", "sat", "on", "the", "mat", "."]))
    )
    assert TokenVocabulary.from_counts(COUNTS, min_count=2).tokens[4:] == ("the", ".")
    assert TokenVocabulary.from_counts(COUNTS, max_size=7).tokens[4:] == ("the", ".", "cat")
    assert TokenVocabulary.from_counts(COUNTS, max_size=4).size == 4
    with pytest.raises(ValueError, match="max_size"):
        TokenVocabulary.from_counts(COUNTS, max_size=3)
    with pytest.raises(ValueError, match="reserved"):
        TokenVocabulary(("", "", "a"))
    with pytest.raises(ValueError, match="distinct"):
        TokenVocabulary(("", "", "", "", "a", "a"))


def test_token_vocabulary_encode_and_decode():
    vocab = TokenVocabulary.from_counts(COUNTS)
    ids, unknown = vocab.encode(["the", "dog", "sat", "cow", "dog"])
    assert ids.dtype == np.int32 and ids.tolist() == [4, UNKNOWN, 10, UNKNOWN, UNKNOWN]
    assert unknown == ["cow", "dog"]
    assert vocab.decode([START, 4, UNKNOWN, PAD, 10, END, 6]) == ["the", UNKNOWN_TOKEN, "sat"]
    assert vocab.decode(np.array([4, 6], np.int64)) == ["the", "cat"]
    with pytest.raises(ValueError, match="outside"):
        vocab.decode([11])


def test_token_vocabulary_file(tmp_path):
    vocab = TokenVocabulary.from_counts(COUNTS)
    path = tmp_path / "vocab.json"
    path.write_bytes(vocab.to_json(mode="words"))
    data = json.loads(path.read_text())
    assert (data["pad_id"], data["unknown_id"], data["start_id"], data["end_id"]) == (0, 1, 2, 3)
    assert data["mode"] == "words" and data["tokens"] == list(vocab.tokens)
    assert TokenVocabulary.load(path) == vocab
    path.write_text(json.dumps({**data, "start_id": 3, "end_id": 2}))
    with pytest.raises(UserError, match="reserves ids"):
        TokenVocabulary.load(path)
    path.write_bytes(Vocabulary(("", "", "a")).to_json())
    with pytest.raises(UserError, match="not a token vocabulary"):
        TokenVocabulary.load(path)
    with pytest.raises(UserError, match="not found"):
        TokenVocabulary.load(tmp_path / "missing.json")


def test_character_vocabulary_file_is_unchanged():
    assert Vocabulary(("", "", "a", "é")).to_json() == (
        b'{\n"pad_id": 0,\n"unknown_id": 1,\n"characters": [\n"",\n"",\n"a",\n"\xc3\xa9"\n]\n}'
    )


def test_token_table_matches_encode():
    vocab = TokenVocabulary.from_counts(Counter(py_text.tokenize(" ".join(CORPUS[:5]), "words")))
    table = tf_text.token_table(vocab)
    texts = CORPUS[:8]
    ids = table.lookup(tf_text.tokenize_tensor(tf.constant(texts), "words")).to_list()
    assert ids == [vocab.encode(py_text.tokenize(t, "words"))[0].tolist() for t in texts]
    padded = table.lookup(tf_text.tokenize_tensor(tf.constant(["a b", ""]), "words").to_tensor())
    assert padded.dtype == tf.int32 and padded.numpy()[1].tolist() == [PAD, PAD]
    empty = tf_text.token_table(TokenVocabulary(("",) * 4))
    assert empty.lookup(tf.constant(["a", ""])).numpy().tolist() == [UNKNOWN, PAD]
