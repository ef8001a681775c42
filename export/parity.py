"""Parity: Keras, the SavedModel signature and onnxruntime give the same outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

from export.onnx import UNFUSED_OPS, op_counts, session
from export.savedmodel import load_savedmodel
from keras_rnn.graphs import ExportGraph

# DESIGN.md section 5: float32 recurrences drift more through GRU's extra matmul.
ATOL = {"simple": 1e-5, "lstm": 1e-5, "gru": 1e-4}
BATCH_SIZES = (1, 5)


def check_graph(
    graph: ExportGraph, savedmodel_dir: Path, onnx_path: Path, atol: float, seed: int = 0
) -> dict[str, Any]:
    """Run all three on every batch size x sequence length; the ``parity.json`` entry."""
    rng = np.random.default_rng(seed)
    savedmodel = load_savedmodel(savedmodel_dir)
    onnx_session = session(onnx_path)
    onnx_outputs = [output.name for output in onnx_session.get_outputs()]
    worst_savedmodel = worst_onnx = 0.0
    shapes = []
    for batch in BATCH_SIZES:
        for length in graph.lengths:
            inputs = graph.sample(batch, length, rng)
            expected = {
                name: keras.ops.convert_to_numpy(value)
                for name, value in graph.model(inputs, training=False).items()
            }
            from_savedmodel = savedmodel(inputs)
            from_onnx = dict(zip(onnx_outputs, onnx_session.run(None, inputs), strict=True))
            for name in graph.outputs:
                worst_savedmodel = max(
                    worst_savedmodel, _max_diff(from_savedmodel[name], expected[name])
                )
                worst_onnx = max(worst_onnx, _max_diff(from_onnx[name], expected[name]))
            shapes.append({name: list(value.shape) for name, value in inputs.items()})
    counts = op_counts(onnx_path)
    return {
        "name": graph.name,
        "max_abs_diff_savedmodel": worst_savedmodel,
        "max_abs_diff_onnx": worst_onnx,
        "atol": atol,
        "ok": worst_savedmodel <= atol and worst_onnx <= atol,
        "shapes_tested": shapes,
        "onnx_op_counts": counts,
        "fused": not any(op in counts for op in UNFUSED_OPS),
    }


def _max_diff(actual: np.ndarray, expected: np.ndarray) -> float:
    if actual.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(actual.astype(np.float64) - expected)))
