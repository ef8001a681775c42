"""Our from-scratch cells equal Keras's layers (and the numpy oracles) on random weights."""

import keras
import numpy as np
import pytest

from keras_rnn import cells, reference

# (batch, time, features, units)
SHAPES = [(1, 1, 1, 1), (3, 5, 2, 4), (2, 9, 7, 3)]


def random_weights(rng, shapes):
    return [rng.normal(0.0, 0.5, shape).astype(np.float32) for shape in shapes]


def build_pair(builtin: keras.layers.Layer, cell: keras.layers.Layer, inputs, rng):
    """Build both layers, give them the same random weights, return both outputs."""
    own = keras.layers.RNN(cell, return_sequences=True)
    builtin(inputs)
    own(inputs)
    weights = random_weights(rng, [w.shape for w in builtin.get_weights()])
    builtin.set_weights(weights)
    own.set_weights(weights)
    return (
        weights,
        keras.ops.convert_to_numpy(builtin(inputs)),
        keras.ops.convert_to_numpy(own(inputs)),
    )


@pytest.mark.parametrize(
    ("builtin_class", "cell_class", "oracle"),
    [
        (keras.layers.SimpleRNN, cells.SimpleRNNCell, reference.simple_rnn_forward),
        (keras.layers.LSTM, cells.LSTMCell, lambda *args: reference.lstm_forward(*args)[0]),
    ],
)
@pytest.mark.parametrize("shape", SHAPES)
def test_simple_rnn_and_lstm_cells(shape, builtin_class, cell_class, oracle):
    rng = np.random.default_rng(1)
    batch, time, features, units = shape
    inputs = rng.normal(size=(batch, time, features)).astype(np.float32)
    builtin = builtin_class(units, return_sequences=True)
    weights, expected, actual = build_pair(builtin, cell_class(units), inputs, rng)
    np.testing.assert_allclose(actual, expected, atol=1e-6)
    np.testing.assert_allclose(actual, oracle(inputs, *weights), atol=1e-6)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
def test_gru_cell(shape, reset_after):
    rng = np.random.default_rng(3)
    batch, time, features, units = shape
    inputs = rng.normal(size=(batch, time, features)).astype(np.float32)
    builtin = keras.layers.GRU(units, reset_after=reset_after, return_sequences=True)
    cell = cells.GRUCell(units, reset_after=reset_after)
    weights, expected, actual = build_pair(builtin, cell, inputs, rng)
    assert weights[2].shape == ((2, 3 * units) if reset_after else (3 * units,))
    np.testing.assert_allclose(actual, expected, atol=1e-6)
    oracle = reference.gru_forward(inputs, *weights, reset_after=reset_after)
    np.testing.assert_allclose(actual, oracle, atol=1e-6)


def test_gru_variants_differ():
    """The two reset placements are different functions: the test above can tell them apart."""
    rng = np.random.default_rng(4)
    inputs = rng.normal(size=(2, 6, 3)).astype(np.float32)
    kernel, recurrent = random_weights(rng, [(3, 12), (4, 12)])
    bias = rng.normal(size=(2, 12)).astype(np.float32)
    bias[1] = 0.0  # so that only the reset placement differs
    after = reference.gru_forward(inputs, kernel, recurrent, bias, reset_after=True)
    before = reference.gru_forward(inputs, kernel, recurrent, bias[0], reset_after=False)
    assert np.abs(after - before).max() > 1e-3


def test_cells_round_trip_through_config():
    cell = cells.GRUCell(5, reset_after=False)
    clone = cells.GRUCell.from_config(cell.get_config())
    assert (clone.units, clone.reset_after) == (5, False)


@pytest.mark.parametrize("cell", [cells.SimpleRNNCell(3), cells.LSTMCell(3), cells.GRUCell(3)])
def test_a_model_with_our_cells_saves_and_loads(cell, tmp_path):
    inputs = keras.Input((None, 2))
    model = keras.Model(inputs, keras.layers.RNN(cell, return_sequences=True)(inputs))
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    x = np.random.default_rng(0).normal(size=(2, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    assert type(loaded.layers[-1].cell) is type(cell)
