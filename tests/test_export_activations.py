"""Every activation Keras offers, as ``activation`` and ``recurrent_activation`` of SimpleRNN,
LSTM and GRU, exports to ONNX with Keras's answer: fused where ONNX names the function, a Loop
otherwise (gelu and celu included, whose TensorFlow ops tf2onnx lacks). An op tf2onnx cannot
convert is one error line naming it and its layer, not tf2onnx's log and a damaged file."""

import keras
import numpy as np
import onnxruntime
import pytest

from export import parity
from export.model.graph import model_graph
from export.onnx import write_onnx
from tests.conftest import assert_user_error, run_module

NOT_ACTIVATIONS = ("get", "serialize", "deserialize")
KERAS_ACTIVATIONS = sorted(
    name
    for name, value in vars(keras.activations).items()
    if callable(value) and not name.startswith("_") and name not in NOT_ACTIVATIONS
)
# exponential as a gate makes outputs grow like exp(exp(t)), and float32 rounding with them
RTOL = {"exponential": 1e-3}
# Activations no Keras recurrent cell can run: glu halves the units, threshold needs arguments.
NOT_RECURRENT = ("glu", "threshold")


def activation_model(activation: str) -> keras.Model:
    """SimpleRNN, LSTM and GRU side by side, each with ``activation`` wherever it takes one."""
    keras.utils.set_random_seed(21)
    steps = keras.Input((None, 3), name="steps")
    both = {"activation": activation, "recurrent_activation": activation}
    layers = {
        "simple": keras.layers.SimpleRNN(4, activation=activation, name="simple"),
        "lstm": keras.layers.LSTM(4, **both, name="lstm"),
        "gru": keras.layers.GRU(4, **both, name="gru"),
    }
    return keras.Model(steps, {name: layer(steps) for name, layer in layers.items()}, name="m")


def test_the_list_holds_every_activation():
    assert len(KERAS_ACTIVATIONS) >= 30 and {"gelu", "celu", "tanh"} <= set(KERAS_ACTIVATIONS)
    assert set(NOT_RECURRENT) <= set(KERAS_ACTIVATIONS)


@pytest.mark.slow
@pytest.mark.parametrize("activation", KERAS_ACTIVATIONS)
def test_every_keras_activation_exports_with_parity(activation, tmp_path):
    steps = np.random.default_rng(21).uniform(-0.5, 0.5, size=(2, 3, 3)).astype(np.float32)
    if activation in NOT_RECURRENT:  # Keras itself refuses: nothing to export
        with pytest.raises(Exception):  # noqa: B017 (whatever Keras raises)
            activation_model(activation)(steps)
        return
    model = activation_model(activation)
    graph, _ = model_graph(model)
    write_onnx(graph, tmp_path / "m.onnx")
    session = onnxruntime.InferenceSession(str(tmp_path / "m.onnx"))
    expected = model(steps)
    for name, got in zip(graph.outputs, session.run(graph.outputs, {"steps": steps}), strict=True):
        want = keras.ops.convert_to_numpy(expected[name])
        np.testing.assert_allclose(
            got, want, rtol=RTOL.get(activation, 1e-5), atol=parity.ATOL["gru"], err_msg=name
        )


USER_OPS = """
import keras


@keras.saving.register_keras_serializable(package="user")
def log_magnitude(x):
    return keras.ops.log1p(keras.ops.abs(x))
"""


def test_an_op_tf2onnx_cannot_convert_is_one_line_naming_it_and_its_layer(tmp_path, monkeypatch):
    """TensorFlow's Log1p (keras.ops.log1p) has no tf2onnx conversion: one error line, exit 2,
    nothing written."""
    (tmp_path / "user_ops_21.py").write_text(USER_OPS)
    monkeypatch.syspath_prepend(str(tmp_path))
    from user_ops_21 import log_magnitude

    steps = keras.Input((None, 3), name="steps")
    hidden = keras.layers.Dense(4, activation=log_magnitude, name="magnitudes")(steps)
    model = keras.Model(steps, keras.layers.GRU(4, name="gru")(hidden), name="logs")
    model.save(tmp_path / "logs.keras")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # where --import finds it
    out = tmp_path / "out"
    result = run_module("export.model", tmp_path / "logs.keras", out, "--import", "user_ops_21")
    assert_user_error(
        result.returncode,
        result.stderr,
        "no conversion for the TensorFlow op Log1p in layer magnitudes",
    )
    assert not out.exists()
