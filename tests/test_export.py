"""python -m export: SavedModel (TF Serving layout), ONNX, manifest and parity for a run."""

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from export import onnx as onnx_export
from export import parity
from export.__main__ import main as export_main
from export.verify import main as verify_main
from tests.conftest import TINY_TRAINING, assert_user_error, interrupt_while_building
from tests.test_runs import dead_pid
from tests.test_serving_runtime import OTHER_GRAPHS, write_graph


@pytest.fixture
def run_copy(trained_run, tmp_path):
    """A private copy of a trained run, so each test may export into it."""

    def copy(cell: str):
        target = tmp_path / cell
        shutil.copytree(trained_run(cell), target)
        return target

    return copy


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_export_writes_the_serving_layout_and_passes_parity(cell, run_copy):
    run_dir = run_copy(cell)
    assert export_main([str(run_dir)]) == 0
    export = run_dir / "export"
    assert (export / "savedmodel" / "sine_forecaster" / "1" / "saved_model.pb").is_file()
    assert (export / "onnx" / "sine_forecaster.onnx").is_file()
    manifest = json.loads((export / "manifest.json").read_text())
    (graph,) = manifest["graphs"]
    assert graph["name"] == "sine_forecaster" and graph["onnx"] == "onnx/sine_forecaster.onnx"
    assert graph["inputs"] == [{"name": "window", "dtype": "float32", "shape": [None, None, 1]}]
    assert [(o["name"], o["shape"]) for o in graph["outputs"]] == [
        ("next_value", [None, 1]),
        ("next_values", [None, 10]),
    ]
    report = json.loads((export / "parity.json").read_text())
    (entry,) = report["graphs"]
    assert report["ok"] and entry["ok"]
    assert entry["max_abs_diff_onnx"] <= parity.ATOL[cell]
    assert entry["max_abs_diff_savedmodel"] <= parity.ATOL[cell]
    assert {(s["window"][0], s["window"][1]) for s in entry["shapes_tested"]} == {
        (1, 10),
        (1, 23),
        (5, 10),
        (5, 23),
    }
    assert entry["fused"] and entry["onnx_op_counts"][cell.upper()] == 1
    assert "Loop" not in entry["onnx_op_counts"]
    if cell == "gru":  # fused by our rewriter (tf2onnx fuses this LSTM itself), which says so
        (layer,) = entry["recurrent_layers"]
        assert layer.endswith(": GRU (forward, last output)"), layer
    assert not list(run_dir.glob(".export*"))


def test_savedmodel_signature_for_tf_serving(run_copy):
    run_dir = run_copy("gru")
    assert export_main([str(run_dir)]) == 0
    cli = shutil.which("saved_model_cli", path=str(Path(sys.executable).parent))
    shown = subprocess.run(
        [cli, "show", "--all", "--dir", str(run_dir / "export/savedmodel/sine_forecaster/1")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    signature = shown.split("signature_def['serving_default']:")[1]
    assert "Method name is: tensorflow/serving/predict" in signature
    for block in (
        "inputs['window'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, -1, 1)",
        "outputs['next_value'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 1)",
        "outputs['next_values'] tensor_info:\n        dtype: DT_FLOAT\n        shape: (-1, 10)",
    ):
        assert block in signature


def test_existing_export_is_kept_without_force(run_copy, cli_error):
    run_dir = run_copy("gru")
    assert export_main([str(run_dir)]) == 0
    before = (run_dir / "export" / "parity.json").read_bytes()
    cli_error(export_main, [run_dir], "export exists: pass --force")
    assert (run_dir / "export" / "parity.json").read_bytes() == before
    (run_dir / "export" / "onnx" / "stale.onnx").write_text("x")  # inside the export's folder
    assert export_main([str(run_dir), "--force"]) == 0
    assert not (run_dir / "export" / "onnx" / "stale.onnx").exists()


def test_force_leaves_a_foreign_export_alone(run_copy, cli_error):
    run_dir = run_copy("gru")
    export = run_dir / "export"
    export.mkdir()
    (export / "slides.pdf").write_text("mine")
    cli_error(export_main, [run_dir, "--force"], "has no manifest.json", "leaves it alone")
    (export / "manifest.json").write_text(json.dumps({"task": "sine", "opset": 17, "graphs": []}))
    cli_error(export_main, [run_dir, "--force"], "also holds slides.pdf", "leaves it alone")
    assert sorted(p.name for p in export.iterdir()) == ["manifest.json", "slides.pdf"]


def test_export_removes_what_killed_runs_left(run_copy):
    run_dir = run_copy("gru")
    dead, live = dead_pid(), os.getppid()  # the process that started the tests: alive
    # (a dead .export.old-PID is an export to put back: tests/test_runs.py)
    stale = [f".export.tmp-{dead}", f".tmp-{dead}-model.keras"]
    for name in [*stale, f".export.tmp-{live}"]:
        (run_dir / name).mkdir()
        (run_dir / name / "saved_model.pb").write_text("x")
    assert export_main([str(run_dir)]) == 0
    assert not [name for name in stale if (run_dir / name).exists()]
    assert (run_dir / f".export.tmp-{live}").is_dir()  # a live process's, maybe at work


@pytest.mark.slow
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_files_get_the_mode_the_umask_gives(umask, tmp_path):
    """Every file and folder of a trained and exported run: readable by others under umask
    022 (a service account serves the export), by nobody else under 077."""
    from keras_rnn import train

    run_dir = tmp_path / "run"
    old = os.umask(umask)
    try:
        assert train.main(["--cell", "gru", "--run-dir", str(run_dir), *TINY_TRAINING]) == 0
        assert export_main([str(run_dir)]) == 0
    finally:
        os.umask(old)
    paths = list(run_dir.rglob("*"))
    names = {path.name for path in paths}
    assert {"config.json", "metrics.json", "manifest.json", "parity.json", "loss.png"} <= names
    assert {"model.keras", "saved_model.pb", "sine_forecaster.onnx"} <= names
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        if umask == 0o077:
            assert mode & 0o077 == 0, (path, oct(mode))
        else:
            wanted = 0o055 if path.is_dir() else 0o044
            assert mode & wanted == wanted and not mode & 0o022, (path, oct(mode))


def test_parity_failure_exits_1_and_writes_nothing(run_copy, monkeypatch, capsys):
    run_dir = run_copy("gru")
    monkeypatch.setitem(parity.ATOL, "gru", -1.0)  # no difference can pass
    assert export_main([str(run_dir)]) == 1
    assert "parity failed" in capsys.readouterr().err
    assert not (run_dir / "export").exists() and not list(run_dir.glob(".export*"))


def test_bad_run_directories(run_copy, tmp_path, cli_error):
    cli_error(export_main, [tmp_path / "nowhere"], "run directory not found")
    (tmp_path / "empty").mkdir()
    cli_error(export_main, [tmp_path / "empty"], "config.json is missing")

    unfinished = run_copy("gru")
    (unfinished / "metrics.json").unlink()
    cli_error(export_main, [unfinished], "has not finished training", "--resume")

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(json.dumps({"config": {"task": "poetry"}}))
    cli_error(export_main, [foreign], "unknown task 'poetry'")


def test_corrupt_model_is_a_user_error(run_copy, cli_error):
    run_dir = run_copy("lstm")
    (run_dir / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    cli_error(export_main, [run_dir], "model.keras cannot be loaded")


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated"])
def test_corrupt_model_says_what_is_wrong(damage, exported_run, tmp_path, cli_error):
    run_dir = tmp_path / "run"
    shutil.copytree(exported_run("lstm"), run_dir)
    damage_file(run_dir / "model.keras", damage)
    for main, argv in ((export_main, [run_dir, "--force"]), (verify_main, [run_dir])):
        message = cli_error(main, argv, "model.keras cannot be loaded", "not a Keras model")
        assert "File not found" not in message


def damage_file(path: Path, damage: str) -> None:
    """Make ``path`` empty, garbage, or its first third."""
    data = path.read_bytes()
    path.write_bytes(
        {"empty": b"", "garbage": b"not a model file", "truncated": data[: len(data) // 3]}[damage]
    )


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated"])
@pytest.mark.parametrize(
    "name", ["onnx/sine_forecaster.onnx", "savedmodel/sine_forecaster/1/saved_model.pb"]
)
def test_verify_names_a_damaged_file_with_status_2(name, damage, exported_run, tmp_path, cli_error):
    """A damaged export is a user's problem (exit 2, one line naming the file); 1 stays
    "parity failed"."""
    run_dir = tmp_path / "run"
    shutil.copytree(exported_run("lstm"), run_dir)
    damage_file(run_dir / "export" / name, damage)
    cli_error(verify_main, [run_dir], f"{name} cannot be loaded (corrupt or truncated?)")


def test_cpu_twin_disables_cudnn_in_both_directions_and_keeps_weights():
    inputs = keras.Input((None, 2), name="x")
    hidden = keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True))(inputs)
    outputs = keras.layers.LSTM(2)(hidden)
    model = keras.Model({"x": inputs}, {"y": outputs})
    twin = onnx_export.cpu_twin(model)
    (bidirectional,) = [x for x in twin.layers if isinstance(x, keras.layers.Bidirectional)]
    (lstm,) = [x for x in twin.layers if isinstance(x, keras.layers.LSTM)]
    recurrent = [bidirectional.forward_layer, bidirectional.backward_layer, lstm]
    assert [layer.use_cudnn for layer in recurrent] == [False, False, False]
    sample = {"x": np.random.default_rng(0).normal(size=(2, 4, 2)).astype(np.float32)}
    np.testing.assert_allclose(twin(sample)["y"], model(sample)["y"], atol=1e-6)


def test_cpu_twin_reaches_layers_of_nested_models():
    inner = keras.Sequential(
        [keras.Input((None, 2)), keras.layers.Bidirectional(keras.layers.GRU(3))], name="inner"
    )
    inputs = keras.Input((None, 2), name="x")
    model = keras.Model({"x": inputs}, {"y": inner(inputs)})
    twin = onnx_export.cpu_twin(model)
    (nested,) = [x for x in twin.layers if isinstance(x, keras.Model)]
    (bidirectional,) = nested.layers
    directions = [bidirectional.forward_layer, bidirectional.backward_layer]
    assert [layer.use_cudnn for layer in directions] == [False, False]
    original = inner.layers[0]
    assert original.forward_layer.use_cudnn == "auto"  # the model itself is left as it was


def test_verify_passes_then_catches_a_swapped_onnx_file(exported_run, tmp_path, capsys):
    assert verify_main([str(exported_run("lstm"))]) == 0
    assert "parity holds" in capsys.readouterr().out
    tampered = tmp_path / "tampered"
    shutil.copytree(exported_run("lstm"), tampered)
    onnx_file = "export/onnx/sine_forecaster.onnx"
    shutil.copy(exported_run("gru") / onnx_file, tampered / onnx_file)  # another model's weights
    assert verify_main([str(tampered)]) == 1
    assert "parity failed" in capsys.readouterr().err


def test_verify_names_another_graphs_file_with_status_2(exported_run, tmp_path, cli_error):
    run_dir = tmp_path / "run"
    shutil.copytree(exported_run("lstm"), run_dir)
    inputs, outputs, fragment = OTHER_GRAPHS["another graph"]
    write_graph(run_dir / "export" / "onnx" / "sine_forecaster.onnx", inputs, outputs)
    cli_error(verify_main, [run_dir], "sine_forecaster.onnx is not the graph", fragment)


def test_verify_needs_an_export(trained_run, cli_error):
    cli_error(verify_main, [trained_run("lstm")], "manifest.json is missing")


def test_ctrl_c_during_an_export_leaves_nothing_behind(run_copy):
    """SIGINT while the export is being built: status 130, one line, no temporary folder, no
    export."""
    run_dir = run_copy("lstm")
    returncode, stderr = interrupt_while_building(["export", run_dir], run_dir)
    assert returncode == 130, stderr
    assert stderr.splitlines() == ["interrupted: no new export was written"]
    assert not list(run_dir.glob(".export*")) and not (run_dir / "export").exists()


def test_export_run_replaces_an_export_only_when_forced(run_copy):
    """The library function follows the CLI's --force rule."""
    from export.exporting import export_run
    from keras_rnn.errors import UserError
    from keras_rnn.runs import finished_run

    run, config = finished_run(run_copy("lstm"))
    assert export_run(run, config)["ok"]
    with pytest.raises(UserError, match="exists: pass --force to replace it"):
        export_run(run, config)
    (run.path / "export" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match=r"notes\.txt"):
        export_run(run, config, force=True)
    assert (run.path / "export" / "notes.txt").read_text() == "mine"


def test_a_savedmodel_only_graph_through_export_and_verify(run_copy, monkeypatch, capsys):
    """A graph that does not go to ONNX gets no ONNX file, a manifest and a parity.json that
    say so, and verify checks what was written, with the graph's own tolerance."""
    from dataclasses import replace

    from keras_rnn.tasks.sine import task as sine

    run_dir = run_copy("lstm")
    task_graphs = sine.export_graphs
    settings = {"formats": ("savedmodel",)}
    monkeypatch.setattr(
        sine, "export_graphs", lambda *args: [replace(g, **settings) for g in task_graphs(*args)]
    )
    assert export_main([str(run_dir)]) == 0
    export = run_dir / "export"
    assert not (export / "onnx").exists()
    (graph,) = json.loads((export / "manifest.json").read_text())["graphs"]
    assert graph["formats"] == ["savedmodel"] and "onnx" not in graph
    (entry,) = json.loads((export / "parity.json").read_text())["graphs"]
    assert entry["formats"] == ["savedmodel"] and entry["max_abs_diff_onnx"] is None
    assert entry["max_abs_diff_savedmodel"] <= entry["atol"] == parity.ATOL["lstm"]
    assert verify_main([str(run_dir)]) == 0
    settings["atol"] = -1.0  # no difference can pass
    assert verify_main([str(run_dir)]) == 1
    assert "parity failed" in capsys.readouterr().err
    from serving.predict import main as predict_main

    status = predict_main([str(run_dir), "--window", "0.1,0.2,0.3"])
    assert_user_error(status, capsys.readouterr().err, "exported as a SavedModel only")
