"""python -m serving.predict RUN_DIR: forecasts from an exported run with onnxruntime alone.

    python -m serving.predict runs/sine-lstm --window 0.1,0.35,0.6,...
    python -m serving.predict runs/sine-lstm --csv series.csv --column value

Imports numpy and onnxruntime only (install with serving/requirements.txt). User mistakes
print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from serving import cli
from serving.errors import UserError
from serving.runtime import forecast, load_graph
from serving.runtime.series import read_csv_series


class _Parser(cli.ArgumentParser):
    def error(self, message: str):
        if message == "argument --window: expected one argument":
            message += " (a window starting with a minus sign needs --window=-0.5,0.1,...)"
        super().error(message)


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


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m serving.predict", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory exported by python -m export")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--window", help="comma-separated past values, oldest first")
    source.add_argument("--csv", help="CSV file with a header row: forecast after its last values")
    parser.add_argument("--column", help="CSV column (default: the file's only column)")
    parser.add_argument("--graph", help="graph name (default: the export's only graph)")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads")
    parser.add_argument("--json", action="store_true", help="print the forecasts as JSON")
    try:
        args = parser.parse_args(argv)
        if args.column and not args.csv:
            raise UserError("--column needs --csv")
        graph = load_graph(args.run_dir / "export", args.graph, args.threads)
        if graph.runtime.get("task") != "sine":
            raise UserError(
                f"graph {graph.name} is not a sine forecaster: predict serves sine runs"
            )
        if args.csv:
            window = read_csv_series(args.csv, args.column)[-graph.runtime["window"] :]
            described = f"the last {len(window)} values of {args.csv}"
        else:
            window = parse_window(args.window)
            described = f"{len(window)} values"
        result = forecast(graph, window)
    except UserError as error:
        return cli.report(error)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"input: {described}, last {window[-1]:.4f}")
    print(f"one step ahead: {result['next_value']:.4f}")
    print("\n| steps ahead | direct | recursive |\n|---:|---:|---:|")
    for step, (direct, recursive) in enumerate(
        zip(result["next_values"], result["recursive"], strict=True)
    ):
        print(f"| {step + 1} | {direct:.4f} | {recursive:.4f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
