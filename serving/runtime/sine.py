"""Sine forecasts from an exported ``sine_forecaster`` graph."""

from __future__ import annotations

from typing import Any

import numpy as np

from serving.errors import UserError
from serving.runtime.graph import ExportedGraph
from serving.runtime.series import recursive_forecast


def forecast(graph: ExportedGraph, window: np.ndarray) -> dict[str, Any]:
    """One-step, direct multi-step and recursive multi-step forecasts after ``window``."""
    values = np.asarray(window, dtype=np.float32).reshape(-1)
    if values.size == 0:
        raise UserError("the window is empty: give at least one value")
    if not np.all(np.isfinite(values)):
        raise UserError("the window holds NaN or infinity: give finite values only")
    inputs = values.reshape(1, -1, 1)
    outputs = graph(window=inputs)
    horizon = outputs["next_values"].shape[1]
    recursive = recursive_forecast(lambda w: graph(window=w)["next_value"], inputs, horizon)
    return {
        "next_value": float(outputs["next_value"][0, 0]),
        "next_values": [float(v) for v in outputs["next_values"][0]],
        "recursive": [float(v) for v in recursive[0]],
    }
