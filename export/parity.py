"""Parity: Keras, the SavedModel signature and onnxruntime give the same outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from export.onnx import UNFUSED_OPS, op_counts
from export.savedmodel import load_savedmodel
from keras_rnn.graphs import ExportGraph, compiled
from serving.runtime.graph import open_session, padded_steps

# float32 recurrences drift more through GRU's extra matmul.
ATOL = {"simple": 1e-5, "lstm": 1e-5, "gru": 1e-4}
BATCH_SIZES = (1, 5)


def samples(graph: ExportGraph, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """The inputs parity tries: the task's samples at every batch size x sequence length and,
    for a graph that masks, one batch per length for each of MASK_BATCHES."""
    batches = [
        graph.sample(batch, length, rng) for batch in BATCH_SIZES for length in graph.lengths
    ]
    if graph.masked_input is not None:
        for patterns in MASK_BATCHES.values():
            for length in graph.lengths:
                sampled = graph.sample(len(patterns) + 1, length, rng)
                batches.append(with_mask_patterns(graph, sampled, patterns, rng))
    return batches


def check_graph(
    graph: ExportGraph,
    savedmodel_dir: Path | None,
    onnx_path: Path | None,
    default_atol: float,
    seed: int = 0,
    entry: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run Keras and each written format (a None path: not written) on every sample
    (``samples``), within ``graph.atol``, or ``default_atol`` when the graph sets none; the
    ``parity.json`` entry, whose diffs and ONNX op counts are None for a format the graph does
    not go to. With the graph's manifest.json ``entry``, an ONNX file that is not that graph
    is a ``UserError`` (``open_session``). Keras runs the model traced once (``compiled``)."""
    atol = default_atol if graph.atol is None else graph.atol
    rng = np.random.default_rng(seed)
    keras_model = compiled(graph.model)
    savedmodel = None if savedmodel_dir is None else load_savedmodel(savedmodel_dir)
    onnx_session = None if onnx_path is None else open_session(onnx_path, entry=entry)
    onnx_outputs = [output.name for output in onnx_session.get_outputs()] if onnx_session else []
    worst = {"savedmodel": 0.0, "onnx": 0.0}
    shapes = []
    for inputs in samples(graph, rng):
        expected = keras_model(**inputs)
        actual = {}
        if savedmodel is not None:
            actual["savedmodel"] = savedmodel(inputs)
        if onnx_session is not None:
            actual["onnx"] = dict(zip(onnx_outputs, onnx_session.run(None, inputs), strict=True))
        for form, outputs in actual.items():
            for name in graph.outputs:
                worst[form] = max(worst[form], _max_diff(outputs[name], expected[name]))
        shapes.append({name: list(value.shape) for name, value in inputs.items()})
    counts = None if onnx_path is None else op_counts(onnx_path)
    opened = {"savedmodel": savedmodel, "onnx": onnx_session}
    checked = [form for form, runner in opened.items() if runner is not None]
    return {
        "name": graph.name,
        "formats": checked,
        "max_abs_diff_savedmodel": worst["savedmodel"] if "savedmodel" in checked else None,
        "max_abs_diff_onnx": worst["onnx"] if "onnx" in checked else None,
        "atol": atol,
        "ok": all(worst[form] <= atol for form in checked),
        "shapes_tested": shapes,
        "onnx_op_counts": counts,
        "fused": None if counts is None else not any(op in counts for op in UNFUSED_OPS),
        "masks_tested": (
            ["as sampled"] + [f"{batch}: {', '.join(rows)}" for batch, rows in MASK_BATCHES.items()]
            if graph.masked_input
            else []
        ),
    }


def with_mask_patterns(
    graph: ExportGraph,
    inputs: dict[str, np.ndarray],
    patterns: dict[str, Callable[[int], np.ndarray]],
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """``inputs`` whose rows 1, 2, ... of ``graph.masked_input`` are rewritten to the masks of
    ``patterns`` (row 0 keeps the sampled one): a fused node must give Keras's answer for
    every mask, not only for the right padding that our own pipelines produce."""
    values = inputs[graph.masked_input].copy()
    if len(values) != len(patterns) + 1:
        raise ValueError(f"{len(patterns)} mask patterns need {len(patterns) + 1} rows")
    length = values.shape[1]
    padded = padded_steps(values, graph.pad_value)
    fillers = values[~padded]  # valid steps to fill masked ones with
    if len(fillers) == 0:
        raise ValueError(f"{graph.name}: the parity sample has no valid step")
    for row, masked in enumerate(patterns.values(), start=1):
        unmasked = np.where(padded[row])[0]
        values[row, unmasked] = fillers[rng.integers(len(fillers), size=len(unmasked))]
        values[row, masked(length)] = graph.pad_value
    return inputs | {graph.masked_input: values}


# The masked steps of rows our pipelines never produce, in two batches: one whose rows are all
# right-padded prefixes (a fused node's fast path) and one with a left-padded row and gaps
# (where valid steps are moved first, export/masking.py). Each masks at least 3 steps.
FULLY_MASKED = {
    "fully masked": lambda length: np.ones(length, bool),
    "fully valid": lambda length: np.zeros(length, bool),
}
MASK_BATCHES = {
    "right-padded batch": FULLY_MASKED,
    "gapped batch": {
        "left-padded": lambda length: np.arange(length) < length // 2,
        "gaps": lambda length: np.arange(length) % 3 == 1,
        **FULLY_MASKED,
    },
}


def _max_diff(actual: np.ndarray, expected: np.ndarray) -> float:
    """The largest absolute difference; for strings, 0 if all are equal, else infinity."""
    if actual.shape != expected.shape:
        return float("inf")
    if expected.dtype.kind in "OSU":
        return 0.0 if np.array_equal(actual, expected) else float("inf")
    return float(np.max(np.abs(actual.astype(np.float64) - expected)))
