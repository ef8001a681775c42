"""Builders for recurrent stacks used by every task's Functional model, and what cuDNN makes
of a model's recurrent layers.

Defaults keep every layer cuDNN-eligible on a GPU (Keras 3 rules): tanh/sigmoid activations,
no recurrent dropout, no unroll, use_bias, GRU ``reset_after=True``; masks must be right-padded.
``cudnn_blockers`` says why a layer would not use cuDNN, ``cudnn_report`` sums up a model for
config.json.
"""

from __future__ import annotations

from typing import Any

import keras

from keras_rnn.config import CELLS, MERGE_MODES
from keras_rnn.errors import UserError

# The dtype of the layers that make a model's outputs (and of sine's input normalisation):
# float32 under every policy. Under mixed precision (keras_rnn.precision) the other layers
# compute in float16 or bfloat16, but softmax, sigmoid and the loss need float32's precision
# and range, as Keras's mixed precision guide says, and so do values in a series' own units
# (bfloat16 keeps 8 significant bits: 1000 and 1004 are the same number). Without a mixed
# policy this is every layer's dtype anyway.
FLOAT32 = "float32"


def rnn_layer(
    cell: str,
    units: int,
    return_sequences: bool = False,
    return_state: bool = False,
    go_backwards: bool = False,
    stateful: bool = False,
    name: str | None = None,
) -> keras.layers.Layer:
    """One Keras recurrent layer of the given cell type, with cuDNN-eligible settings."""
    common = dict(
        units=units,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        stateful=stateful,
        name=name,
    )
    if cell == "simple":
        return keras.layers.SimpleRNN(activation="tanh", **common)
    if cell == "lstm":
        return keras.layers.LSTM(**common)
    if cell == "gru":
        return keras.layers.GRU(reset_after=True, **common)
    raise UserError(f"unknown cell {cell!r}: choose one of {', '.join(CELLS)}")


def recurrent_stack(
    x: keras.KerasTensor,
    cell: str,
    units: int,
    layers: int = 1,
    bidirectional: bool = False,
    merge_mode: str = "concat",
    dropout: float = 0.0,
    return_sequences: bool = False,
    stateful: bool = False,
    name: str = "rnn",
) -> keras.KerasTensor:
    """Apply ``layers`` recurrent layers to ``x`` (batch, time, features).

    Every layer but the last returns sequences; the last returns sequences only if asked.
    ``dropout`` is applied between layers (not inside the recurrence, which would rule out
    cuDNN). A mask carried by ``x`` (from ``Embedding(mask_zero=True)`` or ``Masking``) flows
    through every layer. ``stateful`` layers carry their states from batch to batch (the
    input's batch size must be fixed).
    """
    if cell not in CELLS:
        raise UserError(f"unknown cell {cell!r}: choose one of {', '.join(CELLS)}")
    if merge_mode not in MERGE_MODES:
        raise UserError(
            f"unknown merge mode {merge_mode!r}: choose one of {', '.join(MERGE_MODES)}"
        )
    for index in range(layers):
        last = index == layers - 1
        layer = rnn_layer(
            cell,
            units,
            return_sequences=return_sequences or not last,
            stateful=stateful,
            name=f"{name}_{index}",
        )
        if bidirectional:
            layer = keras.layers.Bidirectional(
                layer, merge_mode=merge_mode, name=f"{name}_{index}_bidirectional"
            )
        x = layer(x)
        if dropout > 0 and not last:
            x = keras.layers.Dropout(dropout, name=f"{name}_{index}_dropout")(x)
    return x


def configured_stack(x: keras.KerasTensor, config, **options) -> keras.KerasTensor:
    """``recurrent_stack`` shaped by a ``TrainConfig`` (cell, units, layers, dropout, and the
    direction: a ``BidirectionalConfig``'s flags or the task's fixed one); ``options`` go
    through (return_sequences, stateful, name)."""
    return recurrent_stack(
        x,
        config.cell,
        config.units,
        layers=config.layers,
        bidirectional=config.bidirectional,
        merge_mode=config.merge_mode,
        dropout=config.dropout,
        **options,
    )


def recurrent_layers(model: keras.Model) -> list[keras.layers.RNN]:
    """Every recurrent layer of ``model``: nested ones (a ``Bidirectional``'s two directions,
    an ``RNN`` inside a custom layer) included, the wrappers themselves not."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.RNN)]


def cudnn_blockers(layer: keras.layers.RNN) -> list[str]:
    """Why Keras 3 would not run ``layer`` with cuDNN on a GPU; empty when it would.

    Keras 3.15.1 has cuDNN kernels for LSTM and GRU only, used when the activation is tanh, the
    recurrent activation sigmoid, there is no recurrent dropout and no unroll, the layer has
    biases, a GRU has ``reset_after=True``, and ``use_cudnn`` is not False. One more condition
    belongs to the data, not the layer: a mask must be right-padded (on a GPU Keras raises on
    any other); every pipeline here pads at the end.
    """
    if not isinstance(layer, keras.layers.LSTM | keras.layers.GRU):
        kind = (
            type(layer.cell).__name__ if type(layer) is keras.layers.RNN else type(layer).__name__
        )
        return [f"Keras has no cuDNN kernel for {kind}"]
    cell = layer.cell
    checks = {
        "activation is not tanh": cell.activation not in (keras.activations.tanh, keras.ops.tanh),
        "recurrent activation is not sigmoid": cell.recurrent_activation
        not in (keras.activations.sigmoid, keras.ops.sigmoid),
        "recurrent dropout": cell.recurrent_dropout != 0,
        "unroll": layer.unroll,
        "no bias": not cell.use_bias,
        "reset_after=False": isinstance(layer, keras.layers.GRU) and not cell.reset_after,
        "use_cudnn=False": layer.use_cudnn is False,
    }
    return [reason for reason, blocks in checks.items() if blocks]


def cudnn_report(model: keras.Model, gpu: bool) -> dict[str, Any]:
    """config.json's ``cudnn``: whether cuDNN was ``available`` (a GPU visible), the recurrent
    layers that ``used`` it (the eligible ones, on a GPU), the ``eligible`` ones, and why
    each other one is not."""
    eligible, other = [], {}
    for layer in recurrent_layers(model):
        if blockers := cudnn_blockers(layer):
            other[layer.name] = "; ".join(blockers)
        else:
            eligible.append(layer.name)
    return {
        "available": gpu,
        "used": eligible if gpu else [],
        "eligible": eligible,
        "not_eligible": other,
    }
