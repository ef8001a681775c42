"""Matplotlib (Agg) figures, written atomically into a run directory or to a file the user
names (``check_figure_path``), marked as this project's in their metadata."""

from __future__ import annotations

import csv
import functools
import gzip
import io
import re
import struct
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display here or on servers
import matplotlib.pyplot as plt
from matplotlib import font_manager, ft2font
from matplotlib.backend_bases import FigureCanvasBase

from keras_rnn.errors import UserError
from keras_rnn.runs import atomic_write_bytes
from serving.outputs import check_output_file

# The formats a figure file's suffix may name: matplotlib's, but PGF, which needs LaTeX.
FIGURE_FORMATS = frozenset(FigureCanvasBase.get_supported_filetypes()) - {"pgf"}
MARK = "keras_rnn.plots"  # the writer named in a figure's metadata, where its format has some
MARK_KEYS = {"png": "Software", **dict.fromkeys(("pdf", "svg", "svgz", "eps", "ps"), "Creator")}
_MARK = re.escape(MARK.encode())
# Where each format holds the mark (matplotlib 3.11): a PNG tEXt chunk (its length first), the
# PDF information dictionary, the SVG RDF metadata (gzipped in svgz), a PostScript comment, a
# JPEG COM segment (Pillow's "comment", its length first).
MARK_PATTERNS = {
    "png": re.compile(
        re.escape(struct.pack(">I", len(f"Software\0{MARK}")) + b"tEXtSoftware\0") + _MARK
    ),
    "pdf": re.compile(rb"/Creator \(" + _MARK + rb"\)"),
    "svg": re.compile(rb"<dc:creator>\s*<cc:Agent>\s*<dc:title>" + _MARK + b"</dc:title>"),
    "eps": re.compile(rb"\n%%Creator: " + _MARK + rb"\r?\n"),
    "jpg": re.compile(re.escape(b"\xff\xfe" + struct.pack(">H", len(MARK) + 2)) + _MARK),
}
MARK_PATTERNS |= {"svgz": MARK_PATTERNS["svg"], "ps": MARK_PATTERNS["eps"]}
MARK_PATTERNS |= dict.fromkeys(("jpeg", "jpe"), MARK_PATTERNS["jpg"])
LARGEST_FIGURE = 64 << 20  # bytes: a larger file is none of ours

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


def check_figure_path(text: str, flag: str, force: bool) -> Path:
    """The figure file that ``flag`` names, checked before anything runs
    (``serving.outputs.check_output_file``): its suffix names one of ``FIGURE_FORMATS``, and an
    existing file is replaced only if ``written_here`` or with ``force``."""
    return check_output_file(text, flag, FIGURE_FORMATS, force, written_here)


def written_here(path: Path) -> bool:
    """Whether the file ``path`` holds the mark ``save_figure`` writes into its format's
    metadata (formats without metadata have none)."""
    pattern = MARK_PATTERNS.get(path.suffix.lower().removeprefix("."))
    try:
        if pattern is None or path.stat().st_size > LARGEST_FIGURE:
            return False
        with gzip.open(path) if path.suffix.lower() == ".svgz" else path.open("rb") as f:
            return pattern.search(f.read(LARGEST_FIGURE)) is not None
    except (OSError, EOFError, zlib.error):  # unreadable, or not gzip after all
        return False


def save_figure(figure: plt.Figure, path: Path) -> None:
    """Write ``figure`` to ``path`` atomically, in the format its suffix names, with the mark
    (``MARK``) where the format has metadata; closes the figure."""
    file_format = path.suffix.lower().removeprefix(".")
    key = MARK_KEYS.get(file_format)
    buffer = io.BytesIO()
    marked = {"metadata": {key: MARK}} if key else {}
    if file_format in ("jpg", "jpeg", "jpe"):
        marked = {"pil_kwargs": {"comment": MARK}}
    figure.savefig(buffer, format=file_format, dpi=110, bbox_inches="tight", **marked)
    plt.close(figure)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as error:
        raise UserError(f"cannot write {path}: {error.strerror or error}") from None


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
