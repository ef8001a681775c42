"""The charlm baseline: xz -9e's bits per test character, alone and after the training text,
as Python's lzma computes them and as benchmarks.xz prints them beside a run's figure."""

from __future__ import annotations

import lzma
import shutil
import subprocess

import pytest

from keras_rnn.tasks.charlm import Config
from keras_rnn.tasks.charlm.compression import xz_baselines, xz_bits_per_char, xz_bytes
from keras_rnn.tasks.charlm.corpus import split_points
from tests.conftest import assert_user_error, run_module
from tests.test_charlm import CHARLM

TEXT = "def add(a, b):\n    return a + b\n" * 40 + "class Point:\n    x: int = 0\n" * 30


def test_xz_bytes_is_a_whole_xz_file_that_decompresses_to_the_text():
    assert lzma.decompress(lzma.compress(TEXT.encode(), preset=9 | lzma.PRESET_EXTREME)) == (
        TEXT.encode()
    )
    assert 0 < xz_bytes(TEXT) < len(TEXT)


@pytest.mark.skipif(shutil.which("xz") is None, reason="no xz tool on this machine")
def test_the_xz_tool_writes_the_same_size():
    tool = subprocess.run(["xz", "-9e", "-c"], input=TEXT.encode(), capture_output=True, check=True)
    assert len(tool.stdout) == xz_bytes(TEXT)


def test_context_makes_a_repeated_text_cheap():
    alone = xz_bits_per_char(TEXT)
    after = xz_bits_per_char(TEXT, context=TEXT)
    assert after < alone / 5
    assert xz_baselines(TEXT, TEXT) == {
        "test_bits_per_char_xz": alone,
        "test_bits_per_char_xz_after_train": after,
    }


def test_split_points_hold_out_the_fractions_at_the_end():
    assert split_points(100, Config(val_fraction=0.1, test_fraction=0.2)) == (70, 80)


def test_benchmark_prints_xz_beside_the_run(tiny_runs, tmp_path):
    text = tmp_path / "text.txt"
    text.write_text(TEXT * 3, encoding="utf-8")
    run = CHARLM.trained(tiny_runs)
    result = run_module("benchmarks.xz", run, "--text", text)
    assert result.returncode == 0, result.stderr
    rows = [line.strip("|").split(" | ") for line in result.stdout.splitlines()]
    rows = {row[0].strip(): [cell.strip() for cell in row] for row in rows if len(row) == 8}
    from keras_rnn.runs import read_json

    metrics = read_json(run / "metrics.json")
    mine = rows[str(run)]
    figures = [metrics["test_bits_per_char"], metrics["test_bits_per_char_dynamic"]]
    assert [float(cell) for cell in mine[2:4]] == pytest.approx(figures, abs=5e-4)
    assert float(mine[4]) == pytest.approx(metrics["test_bits_per_char_xz"], abs=5e-4)
    assert float(mine[5]) == pytest.approx(metrics["test_bits_per_char_xz_after_train"], abs=5e-4)
    beats = " / ".join(
        "yes" if bits < metrics["test_bits_per_char_xz"] else "no" for bits in figures
    )
    assert mine[6] == beats
    assert rows[str(text)][2:4] == ["", ""]  # a text alone has no model figure


def test_benchmark_refuses_a_run_of_another_task(trained_run):
    result = run_module("benchmarks.xz", trained_run("lstm"))
    assert_user_error(result.returncode, result.stderr, "is from task sine")
