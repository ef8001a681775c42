"""SimpleRNN, LSTM and GRU cells written from the equations.

Each is a ``keras.layers.Layer`` cell for ``keras.layers.RNN`` with the same weight names and
layouts as Keras's own cells (``kernel``, ``recurrent_kernel``, ``bias``; gates i, f, c, o for
LSTM and z, r, h for GRU), so weights copy across with ``set_weights``. Only ``keras.ops`` is
used: the cells run on any Keras backend. They are registered with Keras, so a model built
with them loads with ``keras.models.load_model`` once this module is imported (Keras imports
no module of another package while it loads a file).
"""

from __future__ import annotations

import keras
from keras import ops


class _Cell(keras.layers.Layer):
    """Shared weight creation: ``gates`` blocks of ``units`` in each matrix."""

    gates = 1

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def _bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    @property
    def state_size(self) -> int | list[int]:
        return self.units

    @property
    def output_size(self) -> int:
        return self.units

    def build(self, input_shape):
        width = self.gates * self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], width), initializer="glorot_uniform", name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width), initializer="orthogonal", name="recurrent_kernel"
        )
        self.bias = self.add_weight(shape=self._bias_shape(), initializer="zeros", name="bias")

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="keras_rnn")
class SimpleRNNCell(_Cell):
    """h_t = tanh(x_t W + h_{t-1} U + b)."""

    def call(self, inputs, states):
        h = ops.tanh(
            ops.matmul(inputs, self.kernel)
            + ops.matmul(states[0], self.recurrent_kernel)
            + self.bias
        )
        return h, [h]


@keras.saving.register_keras_serializable(package="keras_rnn")
class LSTMCell(_Cell):
    """i, f, o = sigmoid(.), g = tanh(.); c_t = f c_{t-1} + i g; h_t = o tanh(c_t)."""

    gates = 4

    @property
    def state_size(self) -> list[int]:
        return [self.units, self.units]

    def call(self, inputs, states):
        h_prev, c_prev = states
        z = ops.matmul(inputs, self.kernel) + ops.matmul(h_prev, self.recurrent_kernel) + self.bias
        i, f, g, o = ops.split(z, 4, axis=-1)
        c = ops.sigmoid(f) * c_prev + ops.sigmoid(i) * ops.tanh(g)
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, [h, c]


@keras.saving.register_keras_serializable(package="keras_rnn")
class GRUCell(_Cell):
    """z, r = sigmoid(.); h_t = z h_{t-1} + (1 - z) tanh(x W_h + r * (h U_h + b_rh)).

    ``reset_after=True`` (Keras's default, the cuDNN form) applies the reset gate after the
    recurrent matmul and keeps separate input and recurrent bias rows (bias shape (2, 3U));
    ``reset_after=False`` applies it before: tanh(x W_h + (r h) U_h + b_h).
    """

    gates = 3

    def __init__(self, units: int, reset_after: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = reset_after

    def _bias_shape(self) -> tuple[int, ...]:
        width = self.gates * self.units
        return (2, width) if self.reset_after else (width,)

    def call(self, inputs, states):
        h_prev = states[0]
        input_bias, recurrent_bias = (
            (self.bias[0], self.bias[1]) if self.reset_after else (self.bias, None)
        )
        x_z, x_r, x_h = ops.split(ops.matmul(inputs, self.kernel) + input_bias, 3, axis=-1)
        u_z, u_r, u_h = ops.split(self.recurrent_kernel, 3, axis=-1)
        rec_z, rec_r = ops.matmul(h_prev, u_z), ops.matmul(h_prev, u_r)
        if self.reset_after:
            b_z, b_r, b_h = ops.split(recurrent_bias, 3, axis=-1)
            z = ops.sigmoid(x_z + rec_z + b_z)
            r = ops.sigmoid(x_r + rec_r + b_r)
            candidate = ops.tanh(x_h + r * (ops.matmul(h_prev, u_h) + b_h))
        else:
            z = ops.sigmoid(x_z + rec_z)
            r = ops.sigmoid(x_r + rec_r)
            candidate = ops.tanh(x_h + ops.matmul(r * h_prev, u_h))
        h = z * h_prev + (1.0 - z) * candidate
        return h, [h]

    def get_config(self) -> dict:
        return {**super().get_config(), "reset_after": self.reset_after}
