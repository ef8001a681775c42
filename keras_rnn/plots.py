"""Matplotlib (Agg) figures, written atomically into a run directory."""

from __future__ import annotations

import csv
import functools
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display here or on servers
import matplotlib.pyplot as plt
from matplotlib import font_manager, ft2font

from keras_rnn.runs import atomic_write_bytes

# Fonts with CJK characters, used when the machine has one (matplotlib ships none).
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
)


@functools.cache
def text_fonts() -> tuple[tuple[str, ...], frozenset[int]]:
    """The font families for labels (matplotlib's own, then any installed CJK font, as a
    fallback list) and every code point they draw."""
    installed = {font.name for font in font_manager.fontManager.ttflist}
    families = ("DejaVu Sans", *(name for name in CJK_FONTS if name in installed))
    drawn: set[int] = set()
    for family in families:
        path = font_manager.findfont(font_manager.FontProperties(family=family))
        drawn |= set(ft2font.FT2Font(path).get_charmap())
    return families, frozenset(drawn)


def label(text: str) -> str:
    """``text`` as a plot can draw it: characters no installed font has become U+XXXX."""
    drawn = text_fonts()[1]
    return "".join(
        char if ord(char) in drawn else f"U+{ord(char):04X}"
        for char in text.replace("\n", "\\n").replace("\t", "\\t")
    )


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
