"""Text on the TensorFlow side, shared by the tasks that read text: character splitting and
encoding for charlm and tagging, tokenization for translation. The vocabularies are
``serving.runtime.vocab`` and the TensorFlow-free tokenization ``serving.runtime.text``, which
gives the same tokens for the same text (its docstring has the rules)."""

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
    "encode",
    "split_characters",
    "token_table",
    "tokenize",
    "tokenize_batch",
    "tokenize_tensor",
]

# "words" mode on RE2 (whose \s is ASCII only, so whitespace is named by category): runs of
# separators split and are dropped; punctuation, symbols, ideographs and kana split and are kept.
_SINGLE = r"[\p{P}\p{S}" + "".join(rf"\x{{{a:X}}}-\x{{{b:X}}}" for a, b in CJK_RANGES) + "]"
_SEPARATORS = r"[\p{Z}\p{Cc}\p{Cf}]+"


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
