"""What a task exports: named graphs with their input specs and parity samples."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FORMATS = ("savedmodel", "onnx")


@dataclass
class ExportGraph:
    """One graph to export: a Keras model with named inputs and outputs.

    ``inputs`` maps each input name to (shape with None for dynamic dims, dtype name).
    ``sample(batch, length, rng)`` returns realistic inputs for parity checks at the given
    batch size and sequence length; ``lengths`` are the sequence lengths parity tries.
    ``runtime`` is what a runtime needs beside the graph (task, sizes, vocab files).
    ``masked_input`` names the input whose steps equal to ``pad_value`` are masked
    (``Embedding(mask_zero=True)`` or ``Masking``): parity then also tries rows padded on the
    left, with gaps, fully masked and fully valid.
    ``atol`` is the parity tolerance (None: the cell's, ``export.parity.ATOL``); ``formats``
    are the files the graph is written to, a subset of FORMATS (a SavedModel signature taking
    strings, say, cannot go to ONNX).
    """

    name: str
    model: Any  # keras.Model
    inputs: dict[str, tuple[tuple[int | None, ...], str]]
    outputs: list[str]
    sample: Callable[[int, int, np.random.Generator], dict[str, np.ndarray]]
    lengths: tuple[int, ...]
    runtime: dict[str, Any] = field(default_factory=dict)
    masked_input: str | None = None
    pad_value: float = 0
    atol: float | None = None
    formats: tuple[str, ...] = FORMATS

    def __post_init__(self) -> None:
        unknown = set(self.formats) - set(FORMATS)
        if not self.formats or unknown:
            raise ValueError(f"{self.name}: formats must be some of {FORMATS}, not {self.formats}")


def compiled(model: Any) -> Callable[..., dict[str, np.ndarray]]:
    """The Keras ``model`` (dict inputs and outputs) as one ``tf.function``, traced once for
    inputs of any batch size and length (its input signature; beam search changes both from
    call to call), that takes numpy arrays by input name as keyword arguments and returns
    numpy arrays by output name. Called eagerly instead, a masked recurrent layer runs its
    loop one TensorFlow op at a time: the eight parity samples of a masked bidirectional GRU
    took 2.1 s eagerly and 0.9 s through this, trace included."""
    import tensorflow as tf  # here: this module is read where TensorFlow need not load

    signature = {name: tf.TensorSpec(x.shape, x.dtype) for name, x in model.input.items()}
    function = tf.function(
        lambda inputs: model(inputs, training=False), input_signature=[signature]
    )

    def call(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        outputs = function({name: tf.constant(value) for name, value in inputs.items()})
        return {name: value.numpy() for name, value in outputs.items()}

    return call
