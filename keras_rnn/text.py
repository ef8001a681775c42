"""Text on the TensorFlow side, shared by the tasks that read text: character splitting and
encoding for charlm and tagging, tokenization and detokenization for translation. The
vocabularies are ``serving.runtime.vocab`` and the TensorFlow-free tokenization
``serving.runtime.text``, which gives the same tokens for the same text and the same text for
the same tokens (its docstring has the rules)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_text

from serving.runtime.text import CJK_RANGES, MODES, check_mode, detokenize
from serving.runtime.vocab import PAD, UNKNOWN, TokenVocabulary, Vocabulary

__all__ = [
    "MODES",
    "detokenize",
    "detokenize_tensor",
    "encode",
    "split_characters",
    "token_table",
    "tokenize",
    "tokenize_batch",
    "tokenize_tensor",
]

# "words" mode on RE2 (whose \s is ASCII only, so whitespace is named by category): runs of
# separators split and are dropped; punctuation, symbols, ideographs and kana split and are kept.
_CJK_RANGES = "".join(rf"\x{{{a:X}}}-\x{{{b:X}}}" for a, b in CJK_RANGES)
_SINGLE = rf"[\p{{P}}\p{{S}}{_CJK_RANGES}]"
_SEPARATORS = r"[\p{Z}\p{Cc}\p{Cf}]+"

# Whole tokens for detokenize_tensor (regex_full_match), the classes of serving.runtime.text's
# _space_between: _is_cjk, _category's (RE2 knows the two-letter categories), _is_word (the
# first character neither separator nor single) and str.isdecimal.
_CJK = f"[{_CJK_RANGES}]"
_CLOSING = r"[\p{Pe}\p{Pf}\p{Po}]"
_OPENING = r"[\p{Ps}\p{Pi}¿¡]"
_CONNECTOR = r"[\p{Pd}\p{Pc}]"
_WORD = rf"(?s)[^\p{{Z}}\p{{Cc}}\p{{Cf}}\p{{P}}\p{{S}}{_CJK_RANGES}].*"
_DECIMAL = r"\p{Nd}+"


def split_characters(text: str) -> np.ndarray:
    """The text's Unicode code points, split by tensorflow-text."""
    tokenizer = tensorflow_text.UnicodeCharTokenizer()
    return tokenizer.tokenize(tf.constant(text)).numpy().astype(np.int64)


def encode(codepoints: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """Ids of code points through a TensorFlow lookup table; characters outside the
    vocabulary become UNKNOWN."""
    keys = tf.constant([ord(char) for char in vocab.characters[2:]], tf.int64)
    values = tf.range(2, vocab.size, dtype=tf.int32)
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), UNKNOWN)
    return table.lookup(tf.constant(codepoints, tf.int64)).numpy()


def tokenize_tensor(texts: tf.Tensor, mode: str) -> tf.Tensor | tf.RaggedTensor:
    """Tokens of UTF-8 strings in ``mode`` (see ``serving.runtime.text``), usable in tf.data:
    a scalar gives a 1-D string tensor, strings of shape [..., n] a ragged [..., n, None]."""
    check_mode(mode)
    texts = tf.convert_to_tensor(texts, tf.string)
    if texts.shape.rank == 0:
        return tokenize_tensor(texts[tf.newaxis], mode)[0]
    if mode == "characters":
        return tf.strings.unicode_split(tensorflow_text.normalize_utf8(texts, "NFKC"), "UTF-8")
    folded = tensorflow_text.case_fold_utf8(texts)  # ICU's NFKC_Casefold
    return tensorflow_text.regex_split(folded, f"{_SEPARATORS}|{_SINGLE}", _SINGLE)


def detokenize_tensor(tokens: tf.RaggedTensor, mode: str) -> tf.Tensor:
    """Text from a batch of token rows, [batch, None] strings to [batch]: each row as
    ``serving.runtime.text.detokenize`` gives it, in graph ops only (tf.function, SavedModel
    signatures). "words" decides every rule of ``_space_between`` for all tokens at once on the
    flat values: each token's left neighbour, the one before it and the count of '"' before it
    in its row come from shifts and a cumulative sum, the token classes from RE2; a space is
    prefixed to the tokens that get one and the rows are joined. An empty row gives ""."""
    check_mode(mode)
    if not isinstance(tokens, tf.RaggedTensor) or tokens.ragged_rank != 1:
        raise ValueError(f"tokens must be a ragged [batch, None] string tensor, got {tokens!r}")
    if mode == "characters":
        return tf.strings.reduce_join(tokens, axis=1)
    right = tokens.flat_values
    starts = tf.gather(tokens.row_starts(), tokens.value_rowids())
    index = tf.range(tf.size(right, out_type=starts.dtype), dtype=starts.dtype) - starts
    left = tf.where(index >= 1, tf.concat([[""], right], 0)[:-1], "")
    before = tf.where(index >= 2, tf.concat([["", ""], right], 0)[:-2], "")
    quote_counts = tf.math.cumsum(tf.cast(tf.equal(right, '"'), tf.int64), exclusive=True)
    quotes = quote_counts - tf.gather(quote_counts, starts)  # '"' before each token in its row
    opening_quote = quotes % 2 == 0  # right, if '"', opens; left, if '"', closes
    cjk = _full_match(left, _CJK) | _full_match(right, _CJK)
    closing = _full_match(right, _CLOSING) & ~_full_match(right, "[¿¡]")
    closing &= ~(tf.equal(right, '"') & opening_quote)
    after_opening = _full_match(left, _OPENING) | (tf.equal(left, '"') & ~opening_quote)
    connector = _full_match(left, _CONNECTOR) | _full_match(right, _CONNECTOR)
    apostrophe = _full_match(left, "['\u2019]")
    contraction = apostrophe & _full_match(before, _WORD) & _full_match(right, _WORD)
    numbers = _full_match(before, _DECIMAL) & _full_match(right, _DECIMAL)
    three_digits = tf.strings.length(right, unit="UTF8_CHAR") == 3
    joining = _full_match(left, "[.:]") | (tf.equal(left, ",") & three_digits)
    glued = cjk | closing | after_opening | connector | contraction | (numbers & joining)
    space = (index >= 1) & ~glued
    spaced = tf.where(space, tf.strings.join([" ", right]), right)
    return tf.strings.reduce_join(tokens.with_flat_values(spaced), axis=1)


def _full_match(strings: tf.Tensor, pattern: str) -> tf.Tensor:
    return tf.strings.regex_full_match(strings, pattern)


def tokenize(text: str, mode: str) -> list[str]:
    """The tokens of ``text`` in ``mode``, through tensorflow-text."""
    return [token.decode("utf-8") for token in tokenize_tensor(tf.constant(text), mode).numpy()]


def tokenize_batch(texts: Sequence[str], mode: str) -> list[list[str]]:
    """The tokens of each text in ``mode``, through tensorflow-text in one call."""
    if not texts:
        check_mode(mode)
        return []
    rows = tokenize_tensor(tf.constant(list(texts), tf.string), mode).to_list()
    return [[token.decode("utf-8") for token in row] for row in rows]


def token_table(vocab: TokenVocabulary) -> tf.lookup.StaticHashTable:
    """A lookup table from tokens (strings) to ``vocab``'s ids: "" (a dense tensor's padding)
    to PAD, tokens outside the vocabulary to UNKNOWN. Its ``lookup`` takes dense or ragged
    tensors, ``tokenize_tensor``'s output for one."""
    keys = tf.constant(["", *vocab.tokens[TokenVocabulary.RESERVED :]], tf.string)
    values = tf.concat([[PAD], tf.range(TokenVocabulary.RESERVED, vocab.size)], 0)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), UNKNOWN)
