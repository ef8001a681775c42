"""Training data in an order that is a pure function of (seed, epoch), so that a run resumed
at epoch e sees the batches that the uninterrupted run saw in epoch e.

Not ``Dataset.shuffle``: with ``reshuffle_each_iteration`` it draws each order from a generator
that advances with every iterator opened (Keras opens two per epoch), that tf.data cannot save,
and that a new process starts over at epoch 0's order. Here the order of epoch e is a seeded,
stateless permutation of the element indices (``tf.random.experimental.index_shuffle``), read
from a variable that the ``FeedEpoch`` callback sets at each epoch's start: a ``fit`` on these
datasets must include that callback, or every epoch has epoch 0's order.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

_epoch: tf.Variable | None = None


def epoch_variable() -> tf.Variable:
    """The epoch that ``fit`` is in (0 outside ``fit``), one per process."""
    global _epoch
    if _epoch is None:
        _epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="data_epoch")
    return _epoch


def shuffled_indices(count: int, seed: int, batch_size: int | None = None) -> tf.data.Dataset:
    """0 .. ``count`` - 1 in the order of the current epoch: each epoch a different
    permutation, the same one for the same (seed, epoch). With ``batch_size``: that order in
    vectors of ``batch_size`` (the last one shorter)."""
    epoch = epoch_variable()

    def index(position: tf.Tensor) -> tf.Tensor:
        seeds = tf.stack([tf.constant(seed, tf.int64), epoch.read_value()])
        return tf.random.experimental.index_shuffle(position, seeds, max_index=count - 1)

    positions = tf.data.Dataset.range(count)
    if batch_size:
        # One map per batch, not per element: tf.data's per-element map cost 13-30 us per
        # element on 2 cores, more than a step of the small sine and addition models.
        positions = positions.batch(batch_size)
    return positions.map(index)


def shuffled(elements: Any, seed: int) -> tf.data.Dataset:
    """``Dataset.from_tensor_slices(elements)`` in the order of the current epoch.
    ``elements`` is a nest of tensors (``tf.RaggedTensor`` too) with the same first size."""
    tensors, count = _tensors(elements)
    return _rows(shuffled_indices(count, seed), tensors)


def shuffled_batches(elements: Any, seed: int, batch_size: int) -> tf.data.Dataset:
    """``shuffled(elements, seed).batch(batch_size)``, the same batches, gathered one batch at
    a time. ``elements``: a nest of dense tensors with the same first size."""
    tensors, count = _tensors(elements)
    return shuffled_indices(count, seed, batch_size).map(
        lambda i: tf.nest.map_structure(lambda tensor: tf.gather(tensor, i), tensors)
    )


def in_order(elements: Any) -> tf.data.Dataset:
    """The rows of ``elements`` (as ``shuffled`` takes them) in their order: for validation.
    Unlike ``from_tensor_slices``, a ragged row comes out as a dense tensor."""
    tensors, count = _tensors(elements)
    return _rows(tf.data.Dataset.range(count), tensors)


def _tensors(elements: Any) -> tuple[Any, int]:
    tensors = tf.nest.map_structure(
        lambda x: x if isinstance(x, tf.RaggedTensor) else tf.convert_to_tensor(x), elements
    )
    return tensors, int(tf.nest.flatten(tensors)[0].shape[0])


def _rows(indices: tf.data.Dataset, tensors: Any) -> tf.data.Dataset:
    return indices.map(lambda i: tf.nest.map_structure(lambda tensor: tensor[i], tensors))


class FeedEpoch(keras.callbacks.Callback):
    """Set the epoch that ``shuffled_indices`` orders by, before ``fit`` opens the epoch's
    iterator (Keras opens it after ``on_epoch_begin``)."""

    def on_epoch_begin(self, epoch, logs=None):
        epoch_variable().assign(epoch)
