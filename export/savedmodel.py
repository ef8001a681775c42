"""SavedModel in TF Serving's layout, through Keras 3's ExportArchive."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from keras_rnn.graphs import ExportGraph


def input_specs(graph: ExportGraph) -> dict[str, tf.TensorSpec]:
    return {
        name: tf.TensorSpec(shape, tf.dtypes.as_dtype(dtype), name=name)
        for name, (shape, dtype) in graph.inputs.items()
    }


def write_savedmodel(graph: ExportGraph, path: Path) -> None:
    """Write ``graph`` with a ``serving_default`` signature whose inputs and outputs carry the
    graph's names (a dict signature, so TF Serving's REST and gRPC APIs see those names)."""
    archive = keras.export.ExportArchive()
    archive.track(graph.model)
    archive.add_endpoint(
        "serving_default",
        lambda inputs: graph.model(inputs, training=False),
        input_signature=[input_specs(graph)],
    )
    archive.write_out(str(path), verbose=False)


def load_savedmodel(path: Path) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """The ``serving_default`` signature as a numpy-in, numpy-out function."""
    signature = tf.saved_model.load(str(path)).signatures["serving_default"]

    def run(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: value.numpy() for name, value in outputs.items()}

    return run
