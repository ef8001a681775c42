"""Figures written into a run directory or a file the user names (keras_rnn/plots.py)."""

import os
import stat

import pytest

from keras_rnn import plots
from keras_rnn.errors import UserError


def test_a_one_epoch_history_draws_visible_points(tmp_path, monkeypatch):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,val_loss\n0,0.5,0.6\n")
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: figures.append(figure))
    plots.plot_history(history, tmp_path / "loss.png")
    lines = figures[0].axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["loss", "val_loss"]
    for line in lines:  # a line through a single point draws nothing: a marker must show it
        assert line.get_marker() not in (None, "None", "", " ")
        assert line.get_markersize() > 0


def test_loss_plot_is_written(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,val_loss\n0,0.5,0.6\n1,0.4,0.5\n")
    plots.plot_history(history, tmp_path / "plots" / "loss.png")
    assert (tmp_path / "plots" / "loss.png").read_bytes().startswith(b"\x89PNG")


def figure():
    figure, axes = plots.plt.subplots(figsize=(2, 2))
    axes.plot([0, 1], [1, 0])
    return figure


MAGIC = {
    "png": b"\x89PNG",
    "jpg": b"\xff\xd8\xff",
    "pdf": b"%PDF",
    "svg": b"<?xml",
    "svgz": b"\x1f\x8b",
    "eps": b"%!PS",
    "tif": b"II*\x00",
    "webp": b"RIFF",
}


@pytest.mark.parametrize("suffix", MAGIC)
def test_a_figure_has_the_format_its_suffix_names_and_the_umask_s_mode(suffix, tmp_path):
    umask = os.umask(0o027)
    try:
        plots.save_figure(figure(), tmp_path / f"figure.{suffix.upper()}")
    finally:
        os.umask(umask)
    path = tmp_path / f"figure.{suffix.upper()}"
    assert path.read_bytes().startswith(MAGIC[suffix])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == [path.name]  # no temporary left
    # Formats with metadata (or a JPEG comment) carry the mark; a figure of ours in another
    # format needs --force.
    assert plots.written_here(path) == (suffix in plots.MARK_PATTERNS)


def test_a_figure_someone_else_wrote_is_not_ours(tmp_path):
    theirs = tmp_path / "theirs.png"
    figure().savefig(theirs)  # matplotlib's own Software text
    assert not plots.written_here(theirs)
    (tmp_path / "text.svg").write_text(f"<svg><title>{plots.MARK}</title></svg>")
    assert not plots.written_here(tmp_path / "text.svg")
    (tmp_path / "bad.svgz").write_bytes(b"not gzip")
    assert not plots.written_here(tmp_path / "bad.svgz")
    with pytest.raises(UserError, match="exists and this project did not write it"):
        plots.check_figure_path(str(theirs), "--plot", force=False)


def test_only_formats_matplotlib_writes_here_are_accepted(tmp_path):
    for name, fragment in (("a.pgf", "the suffix .pgf"), ("a.keras", "the suffix .keras")):
        with pytest.raises(UserError, match=f"{fragment}: end it with one of ") as error:
            plots.check_figure_path(str(tmp_path / name), "--plot", force=False)
        assert all(f".{suffix}" in str(error.value) for suffix in ("png", "pdf", "svg", "jpg"))
