"""``serving.predict`` on a sine run: a window from ``--window`` or the end of a ``--csv``
file, and the forecasts after it as a table."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import numpy as np

from serving import cli
from serving.errors import UserError
from serving.runtime.graph import ExportedGraph
from serving.runtime.series import read_csv_series
from serving.runtime.sine import forecast

TITLE = "sine runs (one of --window and --csv)"
TAKES_TEXTS = False


def add_arguments(group: cli.FlagGroup) -> None:
    """``--window``, or ``--csv`` with ``--column``; each stays None when not given."""
    group.add_argument("--window", help="comma-separated past values, oldest first")
    group.add_argument("--csv", help="CSV file with a header row: forecast after its last values")
    group.add_argument("--column", help="CSV column (default: the file's only column)")


def parse_window(text: str) -> np.ndarray:
    """Comma-separated numbers; each bad item is named."""
    values = []
    for position, item in enumerate(text.split(","), start=1):
        try:
            value = float(item)
        except ValueError:
            raise UserError(
                f"--window item {position} ({item.strip()!r}) is not a number"
            ) from None
        if not math.isfinite(value):
            raise UserError(f"--window item {position} is {item.strip()}: give finite values only")
        values.append(value)
    return np.asarray(values, dtype=np.float32)


def predict(graph: ExportedGraph, args: argparse.Namespace) -> tuple[dict, str]:
    """The forecast from ``--window`` or the end of ``--csv``, as a table."""
    if (args.window is None) == (args.csv is None):
        raise UserError("a sine run needs exactly one of --window and --csv")
    if args.column and not args.csv:
        raise UserError("--column needs --csv")
    if args.csv:
        window = read_csv_series(args.csv, args.column)[-graph.runtime["window"] :]
        described = f"the last {len(window)} values of {args.csv}"
    else:
        window = parse_window(args.window)
        described = f"{len(window)} values"
    if len(window) and len(window) != graph.runtime["window"]:  # works, but off its training
        print(
            f"warning: the window has {len(window)} values; the model was trained on windows "
            f"of {graph.runtime['window']}: the forecast may be less accurate",
            file=sys.stderr,
        )
    result = forecast(graph, window)
    return result, forecast_table(result, window, described)


def forecast_table(result: dict[str, Any], window: np.ndarray, described: str) -> str:
    """``forecast``'s ``result`` after ``window`` (``described`` in words) as a table."""
    lines = [
        f"input: {described}, last {window[-1]:.4f}",
        f"one step ahead: {result['next_value']:.4f}",
        "",
        "| steps ahead | direct | recursive |",
        "|---:|---:|---:|",
    ]
    for step, (direct, recursive) in enumerate(
        zip(result["next_values"], result["recursive"], strict=True)
    ):
        lines.append(f"| {step + 1} | {direct:.4f} | {recursive:.4f} |")
    return "\n".join(lines)


remote_predict = predict  # calls of the graph only, which a RemoteGraph answers alike
