"""Matplotlib (Agg) figures, written atomically into a run directory."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display here or on servers
import matplotlib.pyplot as plt

from keras_rnn.runs import atomic_write_bytes


def save_figure(figure: plt.Figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def plot_history(history_csv: Path, path: Path) -> None:
    """Training and validation loss per epoch, from Keras's CSVLogger file."""
    with history_csv.open(newline="") as f:
        rows = list(csv.DictReader(f))
    epochs = [int(row["epoch"]) + 1 for row in rows]
    figure, axes = plt.subplots(figsize=(7, 4))
    for key, style in (("loss", "-"), ("val_loss", "--")):
        if rows and key in rows[0]:
            values = [float(row[key]) for row in rows]
            # Markers too: a line through one point (a one-epoch run) draws nothing.
            axes.plot(epochs, values, style, marker="o", markersize=3, label=key)
    axes.set_yscale("log")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title("Training curve")
    axes.legend()
    axes.grid(alpha=0.3)
    save_figure(figure, path)
