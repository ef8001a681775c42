"""Character splitting and encoding with tensorflow-text and TensorFlow lookup tables, shared
by the tasks that read text (charlm, tagging). The vocabulary itself is
``serving.runtime.vocab`` (numpy only, so that serving reads the same file)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_text

from serving.runtime.vocab import UNKNOWN, Vocabulary


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
