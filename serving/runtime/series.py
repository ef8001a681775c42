"""Numeric series: user CSV files and recursive forecasts. numpy only: training and the
TensorFlow-free runtime share this code."""

from __future__ import annotations

import csv
import math

import numpy as np

from serving import cli
from serving.errors import UserError


def read_csv_series(path: str, column: str | None) -> np.ndarray:
    """One numeric column of a CSV file with a header row; every problem is a ``UserError``."""
    file = cli.input_file(path, "CSV")
    try:
        with file.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f, strict=True)
            header = [name.strip() for name in next(reader, [])]
            if not any(header):
                raise UserError(f"{path} is empty: expected a header row, then one value per row")
            if column is None:
                if len(header) != 1:
                    raise UserError(
                        f"{path} has columns {', '.join(header)}: pick one with --column"
                    )
                column = header[0]
            if column not in header:
                raise UserError(f"{path} has no column {column!r} (columns: {', '.join(header)})")
            index = header.index(column)
            values = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                where = f"{path}:{reader.line_num}"
                if index >= len(row):
                    raise UserError(f"{where}: row has {len(row)} fields, no value for {column!r}")
                try:
                    value = float(row[index])
                except ValueError:
                    raise UserError(f"{where}: {row[index]!r} is not a number") from None
                if not math.isfinite(value):
                    raise UserError(
                        f"{where}: {column} is {row[index].strip()}; NaN and infinity are not "
                        "allowed (fill or drop the gap first)"
                    )
                values.append(value)
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    except csv.Error as error:
        raise UserError(f"{path} is not valid CSV: {error}") from None
    return np.asarray(values, dtype=np.float32)


def recursive_forecast(predict_next, inputs: np.ndarray, steps: int) -> np.ndarray:
    """Feed each one-step prediction back as the newest input: (n, window, 1) -> (n, steps)."""
    window, forecasts = inputs, []
    for _ in range(steps):
        next_value = np.asarray(predict_next(window), dtype=np.float32).reshape(-1)
        forecasts.append(next_value)
        window = np.concatenate([window[:, 1:], next_value[:, None, None]], axis=1)
    return np.stack(forecasts, axis=1)
