"""The charlm task's data: the text (the embedded corpus or ``--text``), its split by
position, the vocabulary, random or consecutive training windows and evaluation rows."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import tensorflow as tf

from keras_rnn.errors import UserError
from keras_rnn.tasks.charlm import Config
from keras_rnn.tasks.charlm.corpus import read_text, split_points
from keras_rnn.text import encode, split_characters
from serving.runtime.vocab import Vocabulary

MAX_ROW = 2048  # characters per evaluation row (the context a character is predicted from)
MAX_LOGITS = 2**24  # logits per evaluation batch (64 MB of float32)


@dataclasses.dataclass
class Datasets:
    """The encoded text, its split points, the vocabulary and the tf.data pipelines."""

    text: str  # the whole text
    ids: np.ndarray  # int32, the whole text
    val_start: int
    test_start: int
    vocab: Vocabulary
    source: dict[str, Any]
    train: tf.data.Dataset
    val: tf.data.Dataset

    @property
    def assets(self) -> dict[str, bytes]:
        return {"vocab/vocab.json": self.vocab.to_json()}  # read by the runtimes


def make_datasets(config: Config) -> Datasets:
    text, source = read_text(config)
    codepoints = split_characters(text)
    length = len(codepoints)
    val_start, test_start = split_points(length, config)
    parts = (
        ("training", val_start),
        ("validation", test_start - val_start),
        ("test", length - test_start),
    )
    for split, have in parts:
        if have <= config.sequence_length:
            raise UserError(
                f"{config.text or 'the corpus'} is too short: its {split} part has {have} "
                f"characters, and --sequence-length {config.sequence_length} needs more"
            )
    characters = sorted(set(map(chr, np.unique(codepoints[:val_start]))))
    vocab = Vocabulary(("", "", *characters))
    ids = encode(codepoints, vocab)
    source["vocabulary"] = vocab.size
    if config.batching == "consecutive":
        train = streams(ids[:val_start], config)
        val = streams(ids[val_start:test_start], config)
    else:
        windows = (val_start - 1) // config.sequence_length
        train = (
            tf.data.Dataset.random(seed=config.seed)
            .take(windows)
            .map(lambda r: _window(ids, r % (val_start - config.sequence_length), config))
            .batch(config.batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        val = evaluation_rows(ids[val_start:test_start], vocab.size)
    return Datasets(
        text=text,
        ids=ids,
        val_start=val_start,
        test_start=test_start,
        vocab=vocab,
        source=source,
        train=train,
        val=val,
    )


def _window(ids: np.ndarray, start: tf.Tensor, config: Config):
    chunk = tf.constant(ids)[start : start + config.sequence_length + 1]
    return {"characters": chunk[:-1]}, chunk[1:]


def streams(ids: np.ndarray, config: Config) -> tf.data.Dataset:
    """Truncated backpropagation through time: the text cut into ``batch_size`` streams; batch
    t holds window t of every stream, so row b of batch t+1 continues row b of batch t."""
    rows, steps = config.batch_size, config.sequence_length
    windows = (len(ids) - 1) // (rows * steps)
    if windows < 1:
        raise UserError(
            f"a split of {len(ids)} characters cannot fill one batch of {rows} streams x "
            f"{steps} characters: lower --batch-size or --sequence-length, or use --batching random"
        )
    span = windows * steps

    def batched(values: np.ndarray) -> np.ndarray:  # (windows, rows, steps)
        return values[: rows * span].reshape(rows, windows, steps).transpose(1, 0, 2)

    return tf.data.Dataset.from_tensor_slices(({"characters": batched(ids[:-1])}, batched(ids[1:])))


def evaluation_rows(ids: np.ndarray, vocab_size: int) -> tf.data.Dataset:
    """A split cut into as few rows as keep each within ``MAX_ROW`` characters, every row
    read whole from a zero state. Each character is then predicted from everything before it
    in its row, as when the state is carried from window to window; starting every training
    window from zeros instead would charge the model for what it was never shown. Rows are
    batched so that a batch's logits stay within ``MAX_LOGITS`` values."""
    targets = len(ids) - 1
    rows = math.ceil(targets / MAX_ROW)
    span = targets // rows
    inputs = ids[: rows * span].reshape(rows, span)
    labels = ids[1 : rows * span + 1].reshape(rows, span)
    per_batch = max(1, MAX_LOGITS // (span * vocab_size))
    return tf.data.Dataset.from_tensor_slices(({"characters": inputs}, labels)).batch(per_batch)
