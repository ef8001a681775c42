"""Long steps say where they are on a terminal (``serving.progress``) and write no
carriage returns where output is not one: the helper, translation decoding, training
epochs, dynamic evaluation and the export's steps, with a stream that says it is a
terminal in place of a pseudo-terminal."""

from __future__ import annotations

import contextlib
import io
import shutil
import sys
from collections.abc import Iterator

import pytest

from serving.progress import Progress, terminal
from tests.conftest import TINY_TRAINING
from tests.test_translation_scores import scripted


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@contextlib.contextmanager
def outputs(stdout: io.StringIO, stderr: io.StringIO) -> Iterator[None]:
    """sys.stdout and sys.stderr replaced within the block (pytest's capture resets them
    between a fixture and its test)."""
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        yield


def terminal_stderr() -> tuple[io.StringIO, FakeTerminal]:
    """stdout that is not a terminal (``COMMAND > log``), stderr that is."""
    return io.StringIO(), FakeTerminal()


def piped() -> tuple[io.StringIO, io.StringIO]:
    """Neither stdout nor stderr is a terminal (``COMMAND 2>&1 | tee log``)."""
    return io.StringIO(), io.StringIO()


def test_the_line_is_redrawn_in_place_on_a_terminal_and_erased_at_the_end():
    stream = FakeTerminal()
    with Progress("decoding", 1000, (stream,)) as progress:
        for _ in range(1000):
            progress.advance()
    written = stream.getvalue()
    assert "\rdecoding: 0/1,000 (0%)" in written and "\rdecoding: 1,000/1,000 (100%)" in written
    assert written.count("\r") <= 101 + 2  # one draw per whole percent, then the erasure
    assert written.endswith("\r" + " " * len("decoding: 1,000/1,000 (100%)") + "\r")


def test_what_runs_now_and_an_unknown_total_are_shown():
    stream = FakeTerminal()
    with Progress("exporting encoder", 0, (stream,)) as progress:
        progress.advance(0, "ONNX conversion")
        progress.advance()
    assert "\rexporting encoder: 0 ONNX conversion" in stream.getvalue()
    assert "\rexporting encoder: 1" in stream.getvalue()


def test_nothing_is_written_where_no_terminal_shows_it():
    stdout, stderr = piped()
    with outputs(stdout, stderr), Progress("decoding", 10) as progress:
        progress.advance(10)
    with outputs(*terminal_stderr()), Progress("decoding", 10, None) as progress:
        assert progress.stream is None
    assert stdout.getvalue() == stderr.getvalue() == ""


def test_stderr_is_preferred_then_stdout():
    out, err = FakeTerminal(), FakeTerminal()
    with outputs(out, err):
        assert terminal() is err
    with outputs(out, io.StringIO()):
        assert terminal() is out
        assert terminal(sys.stderr) is None and terminal(object()) is None


def test_translations_with_a_label_show_the_texts_done():
    translator = scripted("2021-02-28")
    stdout, stderr = terminal_stderr()
    with outputs(stdout, stderr):
        translator.greedy(["a", "b", "", "c"], "greedy")
        translator.beam(["a", "b"], 2, 1.0, "beam of 2")
        translator.greedy(["a"])  # no label: a short call (serving.predict) shows nothing
    written = stderr.getvalue()
    assert "\rgreedy: 3/3 (100%)" in written and "\rbeam of 2: 2/2 (100%)" in written
    assert written.count("greedy:") == 2  # 0/3, then 3/3 (one batch)


def test_translations_write_nothing_into_a_pipe():
    stdout, stderr = piped()
    with outputs(stdout, stderr):
        scripted("2021-02-28").greedy(["a", "b"], "greedy")
    assert stdout.getvalue() == stderr.getvalue() == ""


def train_sine(run_dir) -> None:
    from keras_rnn import train

    argv = ["--task", "sine", "--cell", "gru", *TINY_TRAINING, "--run-dir", str(run_dir)]
    assert train.main(argv) == 0


@pytest.mark.slow
def test_training_epochs_show_their_batches_on_a_terminal_stderr(tmp_path):
    """stdout to a log: one line per epoch there, the batches on the terminal's stderr."""
    log, stderr = terminal_stderr()
    with outputs(log, stderr):
        train_sine(tmp_path / "run")
    shown = stderr.getvalue()
    assert "\repoch 1/2: 0/" in shown and "\repoch 2/2: " in shown and "validation" in shown
    assert "\r" not in log.getvalue() and "Epoch 2/2" in log.getvalue()


@pytest.mark.slow
def test_training_in_a_pipe_writes_one_line_per_epoch_and_no_bar(tmp_path):
    stdout, stderr = piped()
    with outputs(stdout, stderr):
        train_sine(tmp_path / "run")
    assert "\r" not in stdout.getvalue() + stderr.getvalue()
    assert "Epoch 2/2" in stdout.getvalue()


def test_dynamic_evaluation_shows_its_segments():
    import keras
    import numpy as np

    from keras_rnn.tasks.charlm import Config
    from keras_rnn.tasks.charlm.dynamic import segment_nats
    from keras_rnn.tasks.charlm.model import network

    config = Config(cell="gru", units=4, layers=1, dropout=0.0)
    keras.utils.set_random_seed(0)
    ids = np.random.default_rng(0).integers(2, 8, size=101, dtype=np.int32)
    stdout, stderr = terminal_stderr()
    with outputs(stdout, stderr):
        segment_nats(network(config, 8), config, ids, 0.1, 25, "dynamic, test")
    assert "\rdynamic, test: 4/4 (100%)" in stderr.getvalue()


def test_the_export_shows_each_step_of_each_graph(trained_run, tmp_path):
    from export.__main__ import main as export_main

    shutil.copytree(trained_run("gru"), tmp_path / "run")
    stdout, stderr = terminal_stderr()
    with outputs(stdout, stderr):
        assert export_main([str(tmp_path / "run")]) == 0
    shown = stderr.getvalue()
    for step in ("0/3 (0%) SavedModel", "1/3 (33%) ONNX conversion", "2/3 (66%) parity check"):
        assert f"\rexporting sine_forecaster: {step}" in shown
