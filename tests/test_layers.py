"""recurrent_stack builds the stacks we promise: depth, direction, masks, cuDNN-eligible."""

import keras
import numpy as np
import pytest

from keras_rnn.errors import UserError
from keras_rnn.layers import CELLS, recurrent_stack

LAYER_TYPES = {"simple": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def stack_model(cell, **kwargs):
    inputs = keras.Input((None, 3))
    masked = keras.layers.Masking(0.0)(inputs)
    return keras.Model(inputs, recurrent_stack(masked, cell, 4, **kwargs))


def recurrent_layers(model):
    found = []
    for layer in model.layers:
        inner = layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer
        if isinstance(inner, keras.layers.RNN):
            found.append(inner)
    return found


@pytest.mark.parametrize("cell", CELLS)
def test_cudnn_eligible_defaults(cell):
    model = stack_model(cell, layers=2, bidirectional=True)
    layers = recurrent_layers(model)
    assert len(layers) == 2
    for layer in layers:
        assert isinstance(layer, LAYER_TYPES[cell])
        assert layer.cell.activation is keras.activations.tanh
        assert layer.cell.recurrent_dropout == 0 and not layer.unroll and layer.cell.use_bias
        if cell != "simple":
            assert layer.cell.recurrent_activation is keras.activations.sigmoid
        if cell == "gru":
            assert layer.cell.reset_after


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [
        ({}, (2, 4)),
        ({"return_sequences": True}, (2, 5, 4)),
        ({"bidirectional": True}, (2, 8)),
        ({"bidirectional": True, "merge_mode": "sum"}, (2, 4)),
        ({"layers": 3, "dropout": 0.5, "return_sequences": True}, (2, 5, 4)),
    ],
)
def test_output_shapes(kwargs, shape):
    model = stack_model("gru", **kwargs)
    assert model(np.ones((2, 5, 3), np.float32)).shape == shape


def test_dropout_sits_between_layers_only():
    model = stack_model("lstm", layers=3, dropout=0.25)
    assert [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [
        "rnn_0_dropout",
        "rnn_1_dropout",
    ]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_right_padding_is_masked_through_the_stack(cell, bidirectional):
    """A post-padded sequence gives the same final output as the unpadded one."""
    model = stack_model(cell, layers=2, bidirectional=bidirectional)
    sequence = np.random.default_rng(0).normal(size=(1, 4, 3)).astype(np.float32)
    padded = np.concatenate([sequence, np.zeros((1, 3, 3), np.float32)], axis=1)
    np.testing.assert_allclose(model(padded), model(sequence), atol=1e-6)


def test_unknown_cell_and_merge_mode_are_user_errors():
    inputs = keras.Input((None, 3))
    with pytest.raises(UserError, match="unknown cell 'rnn'"):
        recurrent_stack(inputs, "rnn", 4)
    with pytest.raises(UserError, match="unknown merge mode 'max'"):
        recurrent_stack(inputs, "lstm", 4, bidirectional=True, merge_mode="max")


@pytest.mark.parametrize("cell", CELLS)
def test_embedding_padding_id_is_masked_through_the_stack(cell):
    """Token id 0 from Embedding(mask_zero=True), post-padded, changes nothing."""
    tokens = keras.Input((None,), dtype="int32")
    embedded = keras.layers.Embedding(10, 3, mask_zero=True)(tokens)
    model = keras.Model(tokens, recurrent_stack(embedded, cell, 4, layers=2, bidirectional=True))
    sequence = np.array([[3, 1, 4, 1, 5]], np.int32)
    padded = np.array([[3, 1, 4, 1, 5, 0, 0]], np.int32)
    np.testing.assert_allclose(model(padded), model(sequence), atol=1e-6)
