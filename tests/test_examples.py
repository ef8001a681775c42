"""examples/forecast_a_series.py and examples/serve_and_query.py run at their --quick size and
print what their prose says."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import run_module, run_without_tensorflow

pytestmark = pytest.mark.slow  # each trains and exports a model

NUMBER = r"(-?[0-9.]+(?:e[-+][0-9]+)?)"
PROTOCOLS = ("TF Serving REST", "tritonclient HTTP", "tritonclient gRPC")


def printed(pattern: str, stdout: str) -> list[float]:
    """The numbers ``pattern``'s groups find in ``stdout``, which must hold it."""
    found = re.search(pattern, stdout, re.M)
    assert found, f"{pattern!r} not in:\n{stdout}"
    return [float(group) for group in found.groups()]


@pytest.fixture(scope="module")
def forecast(tmp_path_factory) -> tuple[subprocess.CompletedProcess, object]:
    """forecast_a_series.py --quick, writing into a folder of its own."""
    out_dir = tmp_path_factory.mktemp("forecast")
    return run_module("examples.forecast_a_series", out_dir, "--quick"), out_dir


def test_forecast_beats_persistence_and_onnxruntime_agrees(forecast):
    result, out_dir = forecast
    assert result.returncode == 0, result.stderr[-4000:]
    stdout = result.stdout
    (keras_rmse,) = printed(rf"^  LSTM \(Keras\) +{NUMBER}$", stdout)
    (linear_rmse,) = printed(rf"^  linear AR\(24\) +{NUMBER}$", stdout)
    (persistence_rmse,) = printed(rf"^  persistence +{NUMBER}$", stdout)
    (onnx_rmse,) = printed(rf"^  LSTM \(onnxruntime\) +{NUMBER}$", stdout)
    (largest,) = printed(rf"over the test windows: {NUMBER}$", stdout)
    assert keras_rmse < persistence_rmse and linear_rmse < persistence_rmse
    assert onnx_rmse == pytest.approx(keras_rmse, abs=1e-4)
    assert largest < 1e-4
    assert "parity ok True, fused LSTM nodes 1" in stdout
    assert (out_dir / "series.csv").is_file() and (out_dir / "export" / "manifest.json").is_file()


def check_answers(result: subprocess.CompletedProcess) -> None:
    """Each protocol's answer is onnxruntime's, and the server stopped on SIGTERM."""
    assert result.returncode == 0, result.stderr[-4000:]
    assert "listening on http://127.0.0.1:" in result.stdout
    assert "server stopped on SIGTERM" in result.stdout
    for protocol in PROTOCOLS:
        (difference,) = printed(
            rf"^{protocol} +\[.*\] +largest difference {NUMBER}$", result.stdout
        )
        assert difference == 0


def test_serve_and_query_an_export_without_tensorflow(forecast):
    _, out_dir = forecast
    check_answers(run_without_tensorflow("examples.serve_and_query", out_dir))


def test_serve_and_query_trains_its_own_export():
    check_answers(run_module("examples.serve_and_query", "--quick"))
