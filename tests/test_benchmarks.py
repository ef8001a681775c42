"""The benchmarks run and print their tables (no timing is asserted: speed lives there).
Most are called in-process (``main(argv)``), which saves starting TensorFlow once more. The
inference benchmark runs as a process: it sets TensorFlow's thread counts, which only hold
before TensorFlow starts. So do the refusals that come before TensorFlow would start: a whole
process's output, checked at little cost."""

import re

from benchmarks.fusion import HEADER as FUSION_HEADER
from benchmarks.inference import HEADER
from benchmarks.masks import HEADER as MASKS_HEADER
from keras_rnn.errors import UserError
from tests.conftest import assert_user_error, run_module
from tests.test_runs import make_run, snapshot


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


def test_fusion_benchmark_compares_fused_and_loop_for_each_option_and_shape(capsys):
    from benchmarks.fusion import main

    argv = ["--cells", "gru", "--units", "4", "--repeats", "2", "--options", "default,reset-before"]
    assert main(argv) == 0
    stdout = capsys.readouterr().out
    assert FUSION_HEADER in stdout
    rows = [line.strip("|").split(" | ") for line in stdout.splitlines()]
    rows = [row for row in rows if row[0].strip() == "gru"]
    assert [(row[1], row[3], row[4]) for row in rows] == [
        (option, mask, shape)
        for option in ("default", "reset-before")
        for mask in ("no", "yes")
        for shape in ("batch 1 x 10", "batch 32 x 50")
    ]
    for row in rows:
        assert row[5] == "1 Loop" and row[7] == "1 GRU"
        assert float(row[6]) > 0 and float(row[8]) > 0
        assert re.fullmatch(r"\d+\.\d\dx", row[9].strip())


def test_fusion_benchmark_rejects_an_unknown_cell():
    result = run_module("benchmarks.fusion", "--cells", "transformer")
    assert_user_error(result.returncode, result.stderr, "unknown cell transformer")


def test_fusion_benchmark_rejects_an_unknown_option():
    result = run_module("benchmarks.fusion", "--options", "default,peepholes")
    assert_user_error(result.returncode, result.stderr, "unknown option peepholes: choose from")


def test_masks_benchmark_times_the_check_and_each_padding_after_checking_keras(capsys):
    from benchmarks.masks import main

    assert main(["--cells", "lstm", "--units", "4", "--repeats", "2"]) == 0
    stdout = capsys.readouterr().out
    assert MASKS_HEADER in stdout
    rows = [line.strip("|").split(" | ") for line in stdout.splitlines()]
    rows = [row for row in rows if row[0].strip() == "lstm"]
    assert [row[2] for row in rows] == ["batch 1 x 10", "batch 32 x 50"]
    for row in rows:
        assert all(float(row[column]) > 0 for column in (3, 4, 6))
        assert re.fullmatch(r"\d+\.\d\dx \([+-]\d+\.\d µs\)", row[5].strip()), row[5]
        assert re.fullmatch(r"\d+\.\d\dx", row[7].strip()), row[7]


def test_masks_benchmark_rejects_nonsense_sizes():
    result = run_module("benchmarks.masks", "--units", "0")
    assert_user_error(result.returncode, result.stderr, "--units: must be a positive integer")


def test_attention_length_benchmark_tables_exact_match_by_length_and_reuses_its_runs(
    tmp_path, capsys, cli_error
):
    """Each model's column holds exact-match fractions per source-length bucket; a second call
    reuses the finished runs (no training), and other settings over them are refused."""
    from benchmarks.attention_length import main

    tiny = ["--units", "4", "--epochs", "1", "--train-pairs", "300", "--test-pairs", "60"]
    argv = [str(a) for a in ["--attention", "none", "luong-dot", "--runs", tmp_path, *tiny]]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert "| source characters | examples | none | luong-dot |" in first
    rows = [line for line in first.splitlines() if re.match(r"\| \d+-\d+ \|", line)]
    assert rows and sum(int(row.split(" | ")[1]) for row in rows) == 60
    for row in rows:
        assert all(0 <= float(cell) <= 1 for cell in row.strip(" |").split(" | ")[2:])
    assert (tmp_path / "attention_length.png").stat().st_size > 0
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "none: reusing" in again and "training into" not in again
    assert [line for line in again.splitlines() if line in rows] == rows
    cli_error(main, [*argv[:-1], "30"], "trained with other settings")


def test_attention_length_checks_its_outputs_before_tensorflow_starts(
    tmp_path, monkeypatch, cli_error
):
    """In-process: the checks refuse before TensorFlow would start (here: a UserError)."""
    from benchmarks.attention_length import main
    from keras_rnn import quiet

    def stop(verbose: bool) -> None:
        raise UserError("TensorFlow would start here")

    monkeypatch.setattr(quiet, "start_tensorflow", stop)
    tiny = ["--attention", "none", "--units", "4", "--epochs", "1", "--train-pairs", "300"]
    run = make_run(tmp_path / "run", "model.keras")
    (tmp_path / "theirs.png").write_bytes(b"someone else's")
    before = snapshot(tmp_path)
    runs = ["--runs", tmp_path / "runs"]
    for argv, fragment in (
        ([*runs, "--plot", tmp_path / "theirs.png"], "this project did not write it: pass --force"),
        ([*runs, "--plot", run / "plots" / "x.png"], f"is inside the run directory {run}"),
        ([*runs, "--plot", tmp_path / "x.txt"], "has the suffix .txt"),
        (["--runs", run], f"--runs {run / 'none'} is inside the run directory {run}"),
    ):
        cli_error(main, [*tiny, *argv], fragment)
    assert snapshot(tmp_path) == before
    default = tmp_path / "new" / "runs"  # the default plot's folder is the runs': created
    cli_error(main, [*tiny, "--runs", default], "TensorFlow would start here")
    assert default.is_dir() and not any(default.iterdir())


def test_serving_benchmark_loads_each_protocol_without_errors_batching_off_and_on(
    exported_run, capsys
):
    from benchmarks.serving import HEADER as SERVING_HEADER
    from benchmarks.serving import PROTOCOLS, main

    run = exported_run("lstm")
    assert main([str(run), "--requests", "20", "--concurrency", "1,3"]) == 0
    stdout = capsys.readouterr().out
    assert SERVING_HEADER in stdout
    rows = [line.strip("|").split("|") for line in stdout.splitlines()]
    rows = [[cell.strip() for cell in row] for row in rows if row[0].strip() == "sine_forecaster"]
    assert [(row[2], row[3], row[4]) for row in rows] == [("in-process onnxruntime", "", "1")] + [
        (protocol, batching, clients)
        for protocol in PROTOCOLS
        for clients in ("1", "3")
        for batching in ("off", "on")
    ]
    for row in rows[1:]:
        assert row[9] == "0"  # errors
        assert float(row[5]) > 0 and float(row[6]) <= float(row[7]) <= float(row[8])
        assert re.fullmatch(r"\d+\.\dx", row[11])


def test_serving_benchmark_translates_on_every_protocol_beside_the_savedmodel(tiny_runs, capsys):
    from benchmarks.serving import TRANSLATION_PROTOCOLS, main
    from tests.test_translate import LUONG, TEST_PAIRS

    run = LUONG.exported(tiny_runs)
    assert main([str(run), "--no-graphs", "--requests", "12", "--concurrency", "1,3"]) == 0
    stdout = capsys.readouterr().out
    rows = [line.strip("|").split("|") for line in stdout.splitlines()]
    rows = [[cell.strip() for cell in row] for row in rows if row[0].strip() == "translate"]
    saved = "in-process SavedModel signature"
    assert [(row[2], row[3], row[4]) for row in rows] == [(saved, "", "1"), (saved, "", "3")] + [
        (protocol, batching, clients)
        for protocol in TRANSLATION_PROTOCOLS
        for clients in ("1", "3")
        for batching in ("off", "on")
    ]
    assert all(row[9] == "0" and float(row[5]) > 0 for row in rows)
    assert f"translations of the {TEST_PAIRS} test sentences: identical" in stdout


def test_serving_benchmark_generates_batching_off_and_on_as_serving_predict(tiny_runs, capsys):
    from benchmarks.serving import GENERATION_ROUTE, main
    from tests.test_charlm import CHARLM

    run = CHARLM.exported(tiny_runs)
    flags = ["--no-graphs", "--requests", "12", "--concurrency", "1,3", "--length", "20"]
    assert main([str(run), *flags]) == 0
    stdout = capsys.readouterr().out
    rows = [line.strip("|").split("|") for line in stdout.splitlines()]
    rows = [[cell.strip() for cell in row] for row in rows if row[0].strip() == "charlm"]
    predict = "in-process onnxruntime (serving.predict)"
    assert [(row[1], row[2], row[3], row[4]) for row in rows] == [
        ("20 characters", predict, "", "1")
    ] + [
        ("20 characters", GENERATION_ROUTE, batching, clients)
        for clients in ("1", "3")
        for batching in ("off", "on")
    ]
    assert all(float(row[5]) > 0 for row in rows) and all(row[9] == "0" for row in rows[1:])
    assert "texts of 64 generations sent by 3 concurrent clients: identical" in stdout


def test_serving_benchmark_refuses_an_unknown_batching_setting():
    result = run_module("benchmarks.serving", "runs/none", "--batching", "off,maybe")
    assert_user_error(result.returncode, result.stderr, "--batching", "must be off, on or off,on")


def test_serving_benchmark_needs_an_export(trained_run):
    result = run_module("benchmarks.serving", trained_run("lstm"))
    assert_user_error(result.returncode, result.stderr, "manifest.json is missing")


def test_bidirectional_benchmark_checks_both_forms_agree_and_times_them():
    from benchmarks.bidirectional import HEADER as BIDIRECTIONAL_HEADER

    result = run_module("benchmarks.bidirectional", "--units", "4", "--repeats", "2")
    assert result.returncode == 0, result.stderr
    assert BIDIRECTIONAL_HEADER in result.stdout
    rows = [line.strip("|").split(" | ") for line in result.stdout.splitlines()]
    rows = [
        [cell.strip() for cell in row] for row in rows if row[0].strip() in ("RNN", "GRU", "LSTM")
    ]
    assert [(row[0], row[2]) for row in rows] == [
        (cell, shape)
        for cell in ("RNN", "GRU", "LSTM")
        for shape in ("batch 1 x 10", "batch 32 x 50")
    ]
    for row in rows:
        assert float(row[3]) > 0 and float(row[4]) > 0
        assert re.fullmatch(r"\d+\.\d\dx", row[5])


def test_bidirectional_benchmark_refuses_bad_sizes():
    result = run_module("benchmarks.bidirectional", "--units", "4,x")
    assert_user_error(result.returncode, result.stderr, "--units must be comma-separated sizes")


def test_converter_benchmark_compares_tf2onnx_alone_with_the_converter(capsys):
    from benchmarks.converter import HEADER as CONVERTER_HEADER
    from benchmarks.converter import main

    assert main(["--repeats", "2"]) == 0
    stdout = capsys.readouterr().out
    assert "parity of the export: ok" in stdout and CONVERTER_HEADER in stdout
    rows = [line.strip("|").split(" | ") for line in stdout.splitlines()]
    rows = {(row[0].strip(), row[3]): row for row in rows if len(row) == 6 and "x 50" in row[3]}
    for shape in ("batch 1 x 50", "batch 32 x 50"):
        assert rows["tf2onnx alone (from_function)", shape][2] == "2 Loop"
        assert rows["python -m export.model", shape][2] == "2 GRU"
    difference = float(stdout.rsplit("outputs: ", 1)[1])
    assert difference < 1e-4


def test_training_benchmark_rows_for_each_keras_variant_and_pytorch_where_installed(capsys):
    """A tiny run (4 units, 2 timed steps): a row per Keras variant and configuration with
    positive speeds; the PyTorch rows and ratios where torch is installed, else the line that
    says how to add them. A bad flag is one error line. In-process: each framework's side
    runs in a process of its own, which sets its thread counts."""
    import importlib.util

    import pytest

    from benchmarks.training import HEADER as TRAINING_HEADER
    from benchmarks.training import INSTALL, main

    bad = run_module("benchmarks.training", "--cells", "gru,transformer")
    assert_user_error(bad.returncode, bad.stderr, "unknown cell transformer")
    tiny = ["--cells", "gru", "--units", "4", "--warmup", "1", "--steps", "2"]
    assert main(["--configurations", "sine,charlm", "--steps-per-execution", "2", *tiny]) == 0
    stdout = capsys.readouterr().out
    assert TRAINING_HEADER in stdout
    rows = [
        [cell.strip() for cell in line.strip("|").split(" | ")]
        for line in stdout.splitlines()
        if line.startswith(("| sine:", "| charlm:"))
    ]
    keras = [
        "Keras fit",
        "Keras fit, steps_per_execution=2",
        "Keras fit, jit_compile=True",
        "Keras fit, the task's tf.data pipeline",
        "Keras fit, the task's tf.data pipeline, steps_per_execution=2",
    ]
    assert [(row[0].split(":")[0], row[2]) for row in rows if row[2].startswith("Keras")] == [
        (name, label) for name in ("sine", "charlm") for label in keras
    ]
    assert rows[0][0] == "sine: 4 units, batch 32 x 10"
    for row in rows:
        assert row[1] == "gru" and float(row[3]) > 0 and float(row[4].replace(",", "")) > 0
        assert row[6] == "n/a" or float(row[6]) >= 0
    pytorch = [row for row in rows if row[2].startswith("PyTorch")]
    if importlib.util.find_spec("torch") is None:
        assert not pytorch and {row[5] for row in rows} == {"n/a"}
        assert f"`{INSTALL}`" in stdout
        pytest.skip("torch is not installed (CI does not install it): only the Keras rows ran")
    assert [row[0].split(":")[0] for row in pytorch] == ["sine", "charlm"]
    assert all(row[2].endswith("nn.GRU") and row[5] == "1.00x" for row in pytorch)
    assert all(re.fullmatch(r"\d+\.\d\dx", row[5]) for row in rows)
