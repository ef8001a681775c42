"""Golden numbers from the course material: numpy oracles, Keras layers and our own cells
must all reproduce them."""

import keras
import numpy as np
import pytest

from keras_rnn import cells, reference

INPUTS = np.array([[[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]]], dtype=np.float32)

SIMPLE_RNN = {
    "linear": {"hidden": [2.0, 6.0, 16.0], "outputs": [4.0, 12.0, 32.0]},
    "tanh": {
        "hidden": [0.9640275800758169, 0.9992255445668126, 0.9999876735248918],
        "outputs": [1.9280551601516338, 1.9984510891336251, 1.9999753470497836],
    },
}
LSTM_HIDDEN = [0.6082834182, 0.9077342840, 0.9891738693]
LSTM_CELL = [0.8491126756, 1.7747489603, 2.7664840677]
GRU_HIDDEN = [0.1149149045, 0.1985390970, 0.2082839367]


def ones(shape):
    return np.ones(shape, dtype=np.float32)


def per_step(values):
    """A golden list of per-step values as (1, time, 2): both units are equal."""
    return np.repeat(np.asarray(values, dtype=np.float32)[None, :, None], 2, axis=2)


def keras_sequence(layer: keras.layers.Layer) -> np.ndarray:
    return keras.ops.convert_to_numpy(layer(INPUTS))


@pytest.mark.parametrize("activation", ["linear", "tanh"])
def test_simple_rnn_oracle(activation):
    act = np.tanh if activation == "tanh" else reference.identity
    hidden = reference.simple_rnn_forward(INPUTS, ones((2, 2)), ones((2, 2)), 0.0, act)
    golden = SIMPLE_RNN[activation]
    np.testing.assert_allclose(hidden, per_step(golden["hidden"]), atol=1e-6)
    np.testing.assert_allclose(hidden @ ones((2, 2)), per_step(golden["outputs"]), atol=1e-6)


@pytest.mark.parametrize("activation", ["linear", "tanh"])
def test_simple_rnn_keras(activation):
    inputs = keras.Input((None, 2))
    hidden = keras.layers.SimpleRNN(
        2,
        activation=activation,
        kernel_initializer="ones",
        recurrent_initializer="ones",
        return_sequences=True,
    )(inputs)
    outputs = keras.layers.Dense(2, kernel_initializer="ones", bias_initializer="zeros")(hidden)
    hidden_seq, output_seq = keras.Model(inputs, [hidden, outputs]).predict(INPUTS, verbose=0)
    golden = SIMPLE_RNN[activation]
    np.testing.assert_allclose(hidden_seq, per_step(golden["hidden"]), atol=1e-6)
    np.testing.assert_allclose(output_seq, per_step(golden["outputs"]), atol=1e-6)


def test_simple_rnn_own_cell():
    layer = keras.layers.RNN(cells.SimpleRNNCell(2), return_sequences=True)
    layer.build(INPUTS.shape)
    layer.set_weights([ones((2, 2)), ones((2, 2)), np.zeros(2, np.float32)])
    np.testing.assert_allclose(
        keras_sequence(layer), per_step(SIMPLE_RNN["tanh"]["hidden"]), atol=1e-6
    )


def test_lstm_oracle():
    hidden, cell = reference.lstm_forward(INPUTS, ones((2, 8)), ones((2, 8)), np.zeros(8))
    np.testing.assert_allclose(hidden, per_step(LSTM_HIDDEN), atol=1e-6)
    np.testing.assert_allclose(cell, per_step(LSTM_CELL), atol=1e-6)


def lstm_states_per_step(layer: keras.layers.Layer):
    """Hidden and cell state after each step (the layer returns only the last cell state)."""
    states = [layer(INPUTS[:, : t + 1]) for t in range(INPUTS.shape[1])]
    hidden = np.concatenate([keras.ops.convert_to_numpy(s[1])[:, None] for s in states], axis=1)
    cell = np.concatenate([keras.ops.convert_to_numpy(s[2])[:, None] for s in states], axis=1)
    return hidden, cell


def test_lstm_keras():
    layer = keras.layers.LSTM(
        2,
        kernel_initializer="ones",
        recurrent_initializer="ones",
        unit_forget_bias=False,
        return_state=True,
    )
    hidden, cell = lstm_states_per_step(layer)
    np.testing.assert_allclose(hidden, per_step(LSTM_HIDDEN), atol=1e-6)
    np.testing.assert_allclose(cell, per_step(LSTM_CELL), atol=1e-6)


def test_lstm_own_cell():
    layer = keras.layers.RNN(cells.LSTMCell(2), return_state=True)
    layer.build(INPUTS.shape)
    layer.set_weights([ones((2, 8)), ones((2, 8)), np.zeros(8, np.float32)])
    hidden, cell = lstm_states_per_step(layer)
    np.testing.assert_allclose(hidden, per_step(LSTM_HIDDEN), atol=1e-6)
    np.testing.assert_allclose(cell, per_step(LSTM_CELL), atol=1e-6)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_oracle_keras_and_own_cell(reset_after):
    bias = np.zeros((2, 6) if reset_after else 6, np.float32)
    oracle = reference.gru_forward(INPUTS, ones((2, 6)), ones((2, 6)), bias, reset_after)
    builtin = keras.layers.GRU(
        2,
        kernel_initializer="ones",
        recurrent_initializer="ones",
        reset_after=reset_after,
        return_sequences=True,
    )
    own = keras.layers.RNN(cells.GRUCell(2, reset_after=reset_after), return_sequences=True)
    own.build(INPUTS.shape)
    own.set_weights([ones((2, 6)), ones((2, 6)), bias])
    for hidden in (oracle, keras_sequence(builtin), keras_sequence(own)):
        np.testing.assert_allclose(hidden, per_step(GRU_HIDDEN), atol=1e-6)


# (iteration, error, a, b, predicted a + b) logged by the classic tutorial with np.random.seed(0).
ADDITION_LOG = [
    (0, 3.45638663, 9, 60, 1),
    (1000, 3.63389116, 28, 35, 255),
    (2000, 3.91366595, 116, 44, 72),
    (3000, 3.72191702, 4, 73, 223),
    (4000, 3.5852713, 71, 11, 8),
    (5000, 2.53352328, 81, 113, 162),
    (6000, 0.57691441, 81, 0, 81),
    (7000, 1.42589952, 4, 125, 129),
    (8000, 0.47477457, 39, 17, 56),
    (9000, 0.21595037, 11, 3, 14),
]


def test_binary_addition_oracle_reproduces_the_tutorial_log():
    logs, weights = reference.train_binary_addition()
    assert [(log.iteration, log.a, log.b, log.predicted) for log in logs] == [
        (it, a, b, predicted) for it, _, a, b, predicted in ADDITION_LOG
    ]
    np.testing.assert_allclose(
        [log.error for log in logs], [e for _, e, *_ in ADDITION_LOG], atol=1e-8
    )
    assert {k: w.shape for k, w in weights.items()} == {
        "input_hidden": (2, 16),
        "hidden_output": (16, 1),
        "hidden_hidden": (16, 16),
    }
