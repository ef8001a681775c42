"""Each epoch's data order is a pure function of (seed, epoch): a resumed run sees the batches
the uninterrupted one saw."""

import numpy as np
import pytest
import tensorflow as tf

from keras_rnn.epochs import (
    FeedEpoch,
    epoch_variable,
    shuffled,
    shuffled_batches,
    shuffled_indices,
)
from keras_rnn.tasks.addition import Config as AdditionConfig
from keras_rnn.tasks.addition import task as addition
from keras_rnn.tasks.sine import Config as SineConfig
from keras_rnn.tasks.sine import task as sine


@pytest.fixture
def at_epoch():
    """``at_epoch(dataset, epoch)``: the dataset's elements in that epoch's order."""

    def elements(dataset: tf.data.Dataset, epoch: int) -> list:
        FeedEpoch().on_epoch_begin(epoch)
        return list(dataset.as_numpy_iterator())

    yield elements
    epoch_variable().assign(0)


def test_each_epoch_has_its_own_order_and_keeps_it(at_epoch):
    order = shuffled_indices(50, seed=3)
    first, second = at_epoch(order, 0), at_epoch(order, 1)
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second and first != list(range(50))
    assert at_epoch(order, 0) == first and at_epoch(order, 1) == second  # any process, any time
    assert at_epoch(shuffled_indices(50, seed=4), 0) != first


def test_batched_indices_and_batches_are_the_per_element_order_cut(at_epoch):
    """The one-map-per-batch forms give exactly the batches of the per-element forms."""
    for epoch in (0, 3):
        order = at_epoch(shuffled_indices(50, seed=3), epoch)
        batched = at_epoch(shuffled_indices(50, seed=3, batch_size=16), epoch)
        assert [list(batch) for batch in batched] == [order[i : i + 16] for i in (0, 16, 32, 48)]
        elements = ({"x": np.arange(100).reshape(50, 2)}, np.arange(50) * 10)
        expected = at_epoch(shuffled(elements, seed=3).batch(16), epoch)
        got = at_epoch(shuffled_batches(elements, seed=3, batch_size=16), epoch)
        for (x, y), (x_expected, y_expected) in zip(got, expected, strict=True):
            np.testing.assert_array_equal(x["x"], x_expected["x"])
            np.testing.assert_array_equal(y, y_expected)


def test_shuffled_keeps_each_row_whole(at_epoch):
    lengths = [1, 3, 2, 4]
    rows = tf.RaggedTensor.from_row_lengths(np.arange(sum(lengths), dtype=np.int32), lengths)
    dataset = shuffled(({"ids": rows}, np.array(lengths)), seed=0)
    for ids, length in at_epoch(dataset, 2):
        assert len(ids["ids"]) == length


@pytest.mark.parametrize(
    "datasets",
    [lambda: sine.make_datasets(SineConfig()), lambda: addition.make_datasets(AdditionConfig())],
)
def test_training_batches_follow_the_epoch(datasets, at_epoch):
    def first_batch(train, epoch) -> list[bytes]:
        return [array.tobytes() for array in tf.nest.flatten(at_epoch(train.take(1), epoch))]

    train = datasets().train
    first = first_batch(train, 0)
    assert first_batch(train, 1) != first
    assert first_batch(datasets().train, 0) == first  # a new pipeline, the same order
