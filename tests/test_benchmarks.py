"""The benchmarks run and print their tables (no timing is asserted: speed lives there)."""

import re

from benchmarks import inference


def test_inference_benchmark_prints_a_row_per_graph_and_shape(exported_run, capsys):
    assert inference.main([str(exported_run("lstm")), "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "1 thread(s), 2 calls" in out and inference.HEADER in out
    rows = [line for line in out.splitlines() if line.startswith("| sine_forecaster")]
    assert [row.split(" | ")[2] for row in rows] == ["batch 1", "batch 32 x 50"]
    for row in rows:
        cells = row.strip("|").split(" | ")
        assert cells[1] == "1 LSTM"
        assert all(float(value) > 0 for value in cells[3:6])
        assert all(re.fullmatch(r"\d+\.\dx", ratio.strip()) for ratio in cells[6:8])


def test_inference_benchmark_needs_an_export(trained_run, cli_error):
    cli_error(inference.main, [trained_run("lstm")], "manifest.json is missing")
