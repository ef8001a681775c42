"""Parity inputs for a model this project did not train, drawn from its input specs.

Each input gets its declared dtype, rank and fixed sizes. A free first size after the batch is
the sequence length parity varies; any other free size is ``OTHER_SIZE``. Integer ids that feed
an ``Embedding`` stay below its ``input_dim``; an input that masks (``Embedding(mask_zero=True)``
or ``Masking``) gets right-padded rows, and the first such input is the graph's
``masked_input``, so that parity also tries left padding, gaps and fully masked rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from export.consumers import consumers
from keras_rnn.errors import UserError

LENGTHS = (8, 21)  # the sequence lengths parity tries where the length is free
OTHER_SIZE = 3  # any other free size
OTHER_IDS = 2  # integers that feed no Embedding are drawn from range(OTHER_IDS)


@dataclass(frozen=True)
class InputSpec:
    """What parity needs to know of one input."""

    name: str
    shape: tuple[int | None, ...]  # batch first, None where free
    dtype: str
    ids: int | None = None  # integer inputs: draw from range(ids)
    pad_value: float | None = None  # the padding an input that masks gets

    @property
    def sequence(self) -> bool:
        """Whether the size after the batch is free: the sequence length."""
        return len(self.shape) > 1 and self.shape[1] is None


def input_specs(model: keras.Model) -> tuple[list[InputSpec], list[str]]:
    """The spec of each of ``model.inputs`` (named by their tensors), and notes on what parity
    cannot know (integers that feed no Embedding; inputs of a fixed length)."""
    specs, notes = [], []
    for tensor in model.inputs:
        name, dtype = tensor.name, keras.backend.standardize_dtype(tensor.dtype)
        shape = tuple(tensor.shape)
        if dtype == "string":
            raise UserError(
                f"input {name} takes strings, which ONNX graphs do not: export the model that "
                "follows the text preprocessing (its ids in)"
            )
        takers = consumers(model, tensor)
        embeddings = [layer for layer in takers if isinstance(layer, keras.layers.Embedding)]
        maskings = [layer for layer in takers if isinstance(layer, keras.layers.Masking)]
        ids = pad_value = None
        if "int" in dtype:
            if embeddings:
                ids = min(layer.input_dim for layer in embeddings)
                if any(layer.mask_zero for layer in embeddings):
                    pad_value = 0
            else:
                ids = OTHER_IDS
                notes.append(
                    f"input {name} ({dtype}) feeds no Embedding: parity draws it from "
                    f"0 to {OTHER_IDS - 1}"
                )
        elif maskings:
            pad_value = float(maskings[0].mask_value)
        # steps of ids (batch, time) or of vectors (batch, time, features)
        steps = len(shape) == 2 if embeddings else len(shape) == 3 and ids is None
        if steps and shape[1] is not None:
            notes.append(
                f"input {name} has a fixed length of {shape[1]} steps (as the model was built): "
                "the export takes only that length"
            )
        specs.append(InputSpec(name, shape, dtype, ids, pad_value))
    return specs, notes


def lengths(specs: list[InputSpec]) -> tuple[int, ...]:
    """The sequence lengths parity tries: LENGTHS where some input's length is free, else the
    one fixed length there is (or 1: no input is a sequence)."""
    if any(spec.sequence for spec in specs):
        return LENGTHS
    fixed = [spec.shape[1] for spec in specs if len(spec.shape) > 1]
    return (fixed[0] if fixed else 1,)


def sampler(
    specs: list[InputSpec],
) -> Callable[[int, int, np.random.Generator], dict[str, np.ndarray]]:
    """``sample(batch, length, rng)`` for ``ExportGraph``: every input at its spec; inputs that
    mask are right-padded, each row keeping at least one valid step."""

    def sample(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        inputs = {}
        for spec in specs:
            shape = [batch] + [
                (length if axis == 1 else OTHER_SIZE) if size is None else size
                for axis, size in enumerate(spec.shape[1:], start=1)
            ]
            if spec.dtype == "bool":
                values = rng.integers(0, 2, size=shape).astype(bool)
            elif spec.ids is not None:
                low = 1 if spec.pad_value == 0 else 0  # 0 is padding where it masks
                values = rng.integers(low, max(spec.ids, low + 1), size=shape).astype(spec.dtype)
            else:
                values = rng.normal(size=shape).astype(spec.dtype)
            if spec.pad_value is not None and len(shape) > 1:
                steps = shape[1]
                valid = rng.integers(1, steps + 1, size=batch)
                values[np.arange(steps)[None, :] >= valid[:, None]] = spec.pad_value
            inputs[spec.name] = values
        return inputs

    return sample
