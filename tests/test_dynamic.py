"""charlm's dynamic evaluation on a tiny network: a valid code (every segment scored before
the weights learn from it), the static figure at rate 0, a gain on repeated text, and the
trained weights left as they were."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_rnn.tasks.charlm import Config
from keras_rnn.tasks.charlm.dynamic import LN2, dynamic_bits_per_char, segment_nats
from keras_rnn.tasks.charlm.model import network

VOCAB = 12


@pytest.fixture(scope="module", params=["gru", "lstm"])
def tiny(request):
    keras.utils.set_random_seed(3)
    config = Config(cell=request.param, units=8, layers=2, dropout=0.0)
    return network(config, VOCAB), config


def random_ids(length: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(2, VOCAB, size=length, dtype=np.int32)


def test_rate_zero_is_the_text_read_as_one_stream(tiny):
    model, config = tiny
    ids = random_ids(237, 0)
    logits = model({"characters": ids[None, :-1]})["logits"]
    nats = keras.losses.sparse_categorical_crossentropy(ids[None, 1:], logits, from_logits=True)
    whole = float(np.sum(keras.ops.convert_to_numpy(nats)))
    segments = segment_nats(model, config, ids, 0.0, 50)
    assert len(segments) == 5  # 236 targets: 4 segments of 50 and one of 36
    assert segments.sum() == pytest.approx(whole, rel=1e-5)
    bits = dynamic_bits_per_char(model, config, ids, 0.0, 50)
    assert bits == pytest.approx(whole / 236 / LN2, rel=1e-5)


def test_each_segment_is_scored_before_the_model_learns_from_it(tiny):
    """Changing the text after a point changes no score before it: the figure is what a
    decoder, learning as it decodes, could reproduce."""
    model, config = tiny
    before = [w.copy() for w in model.get_weights()]
    shared = random_ids(121, 1)
    first = segment_nats(model, config, np.concatenate([shared, random_ids(80, 2)]), 0.5, 20)
    second = segment_nats(model, config, np.concatenate([shared, random_ids(80, 3)]), 0.5, 20)
    np.testing.assert_array_equal(first[:6], second[:6])  # targets 1..120 lie in shared
    assert not np.allclose(first[6:], second[6:])
    # within a segment too: the first is scored with the trained weights, the second not
    static = segment_nats(model, config, shared, 0.0, 20)
    assert first[0] == pytest.approx(static[0], rel=1e-6) and first[1] != pytest.approx(static[1])
    for kept, now in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, now)


def test_learning_from_repeated_text_lowers_its_cost(tiny):
    model, config = tiny
    ids = np.tile(random_ids(25, 4), 40)
    static = dynamic_bits_per_char(model, config, ids, 0.0, 25)
    dynamic = dynamic_bits_per_char(model, config, ids, 0.5, 25)
    assert dynamic < static - 0.2
