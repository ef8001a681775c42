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
BATCH_SIZES = (1, 5)  # 5 rows: one sampled and each of MASK_PATTERNS


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
            if graph.masked_input is not None and batch >= len(MASK_PATTERNS) + 1:
                inputs = with_mask_patterns(graph, inputs, rng)
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
        "masks_tested": ["as sampled", *MASK_PATTERNS] if graph.masked_input else [],
    }


def with_mask_patterns(
    graph: ExportGraph, inputs: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``inputs`` whose rows 1 to 4 of ``graph.masked_input`` are rewritten to the masks of
    ``MASK_PATTERNS`` (row 0 keeps the sampled one): a fused node must give Keras's answer for
    every mask, not only for the right padding that our own pipelines produce."""
    values = inputs[graph.masked_input].copy()
    length = values.shape[1]
    padded = values == graph.pad_value
    if values.ndim == 3:  # Masking: a step is masked when all its features are the pad value
        padded = padded.all(axis=-1)
    fillers = values[~padded]  # valid steps to fill masked ones with
    if len(fillers) == 0:
        raise ValueError(f"{graph.name}: the parity sample has no valid step")
    for row, pattern in enumerate(MASK_PATTERNS, start=1):
        unmasked = np.where(padded[row])[0]
        values[row, unmasked] = fillers[rng.integers(len(fillers), size=len(unmasked))]
        values[row, MASK_PATTERNS[pattern](length)] = graph.pad_value
    return inputs | {graph.masked_input: values}


# Masked steps of each pattern (at least 3 steps): masks our pipelines never produce included.
MASK_PATTERNS = {
    "left-padded": lambda length: np.arange(length) < length // 2,
    "gaps": lambda length: np.arange(length) % 3 == 1,
    "fully masked": lambda length: np.ones(length, bool),
    "fully valid": lambda length: np.zeros(length, bool),
}


def _max_diff(actual: np.ndarray, expected: np.ndarray) -> float:
    if actual.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(actual.astype(np.float64) - expected)))
