"""Builders for recurrent stacks used by every task's Functional model.

Defaults keep every layer cuDNN-eligible on a GPU (Keras 3 rules): tanh/sigmoid activations,
no recurrent dropout, no unroll, use_bias, GRU ``reset_after=True``; masks must be right-padded.
"""

from __future__ import annotations

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
    """``recurrent_stack`` shaped by a ``TrainConfig`` (cell, units, layers, bidirectional,
    merge mode, dropout); ``options`` go through (return_sequences, stateful, name)."""
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
