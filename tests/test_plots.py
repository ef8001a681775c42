"""Figures written into a run directory (keras_rnn/plots.py)."""

from keras_rnn import plots


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
