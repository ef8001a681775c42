"""The benchmarks run and print their tables (no timing is asserted: speed lives there).
They run as processes: TensorFlow's thread counts can only be set before it starts."""

import re

from benchmarks.inference import HEADER
from tests.conftest import assert_user_error, run_module


def test_inference_benchmark_prints_a_row_per_graph_and_shape(exported_run):
    result = run_module("benchmarks.inference", exported_run("lstm"), "--repeats", "2")
    assert result.returncode == 0, result.stderr
    assert "1 thread(s), 2 calls" in result.stdout and HEADER in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("| sine_forecaster")]
    assert [row.split(" | ")[2] for row in rows] == ["batch 1", "batch 32 x 50"]
    for row in rows:
        cells = row.strip("|").split(" | ")
        assert cells[1] == "1 LSTM"
        assert all(float(value) > 0 for value in cells[3:6])
        assert all(re.fullmatch(r"\d+\.\dx", ratio.strip()) for ratio in cells[6:8])


def test_inference_benchmark_needs_an_export(trained_run):
    result = run_module("benchmarks.inference", trained_run("lstm"))
    assert_user_error(result.returncode, result.stderr, "manifest.json is missing")
