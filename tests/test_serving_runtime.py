"""The TensorFlow-free runtime on a sine export: CSV input with TF unimportable, the blocker
itself, input checks, damaged files and refusals that are not a task's (the battery in
test_sine.py serves the forecasts and checks their refusals); and on a charlm export, ids
checked against the vocabulary and inputs the graph cannot run on together."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from keras_rnn.errors import UserError
from serving.clients.__main__ import main as clients_main
from serving.predict import main as predict_main
from serving.runtime import forecast, load_graph
from tests.conftest import REPO, assert_user_error, run_without_tensorflow
from tests.test_charlm import CHARLM
from tests.test_sine import WINDOW


def test_predict_reads_a_csv_without_tensorflow(exported_run, tmp_path):
    run_dir = exported_run("lstm")
    expected = forecast(load_graph(run_dir / "export"), WINDOW)
    csv_path = tmp_path / "series.csv"
    csv_path.write_text("t,value\n" + "".join(f"{i},{v:.9g}\n" for i, v in enumerate(WINDOW)))
    table = run_without_tensorflow(
        "serving.predict", run_dir, "--csv", csv_path, "--column", "value"
    )
    assert table.returncode == 0, table.stderr
    assert f"one step ahead: {expected['next_value']:.4f}" in table.stdout
    assert "input: the last 10 values of" in table.stdout
    assert table.stdout.count("\n| ") == 11  # header and 10 steps


def test_the_blocker_really_blocks():
    """A TensorFlow import must fail there, or the test above proves nothing."""
    result = run_without_tensorflow("export.onnx")  # its first import is keras
    assert result.returncode != 0 and "import of keras halted;" in result.stderr


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            {"window": np.zeros((1, 10), np.float32)},
            "input window must have rank 3 (shape (?, ?, 1))",
        ),
        ({"window": np.zeros((1, 10, 2), np.float32)}, "must have size 1 on axis 2"),
        ({"window": np.array([[["a"]]])}, "input window must be float32 numbers, got <U1"),
        ({}, "takes inputs window: missing window"),
        ({"window": np.zeros((1, 3, 1)), "state": 1}, "unexpected state"),
    ],
)
def test_runtime_rejects_bad_inputs(inputs, message, exported_run):
    graph = load_graph(exported_run("lstm") / "export")
    with pytest.raises(UserError) as error:
        graph(**inputs)
    assert message in str(error.value)


def test_runtime_accepts_float64_and_any_length(exported_run):
    graph = load_graph(exported_run("lstm") / "export")
    assert graph(window=np.zeros((3, 4, 1)))["next_values"].shape == (3, 10)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_onnx_is_one_line(damage, exported_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(exported_run("lstm") / "export", run_dir / "export")
    onnx_path = run_dir / "export" / "onnx" / "sine_forecaster.onnx"
    data = onnx_path.read_bytes()
    damaged = {"garbage": b"not onnx", "truncated": data[: len(data) // 3], "empty": b""}
    onnx_path.write_bytes(damaged[damage])
    result = run_without_tensorflow("serving.predict", run_dir, "--window", "0.1,0.2")
    assert_user_error(
        result.returncode,
        result.stderr,
        "sine_forecaster.onnx cannot be loaded (corrupt or truncated?): it is",
    )


Tensors = dict[str, tuple[int, list]]  # name -> (ONNX element type, shape; None: any size)
SINE_INPUTS: Tensors = {"window": (TensorProto.FLOAT, [None, None, 1])}
SINE_OUTPUTS: Tensors = {
    "next_value": (TensorProto.FLOAT, [None, 1]),
    "next_values": (TensorProto.FLOAT, [None, 10]),
}


def write_graph(path: Path, inputs: Tensors, outputs: Tensors) -> None:
    """A valid ONNX file at ``path`` with these inputs and outputs, each output a constant of
    its shape (size 1 where any size goes, which onnxruntime then reports)."""
    nodes = []
    for name, (kind, shape) in outputs.items():
        sizes = [size or 1 for size in shape]
        value = helper.make_tensor(name, kind, sizes, [0] * int(np.prod(sizes)))
        nodes.append(helper.make_node("Constant", [], [name], value=value))
    graph = helper.make_graph(
        nodes,
        "another",
        [helper.make_tensor_value_info(name, *spec) for name, spec in inputs.items()],
        [helper.make_tensor_value_info(name, *spec) for name, spec in outputs.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


# A valid ONNX file whose inputs or outputs are not the manifest's, and what the error says.
OTHER_GRAPHS = {
    "another graph": (
        {"steps": (TensorProto.FLOAT, [None, 4])},
        {"y": (TensorProto.FLOAT, [None])},
        "its inputs are steps float32 (?, 4), the manifest names window float32 (?, ?, 1)",
    ),
    "outputs": (
        SINE_INPUTS,
        {"next_value": (TensorProto.FLOAT, [None, 1])},
        "its outputs are next_value float32 (1, 1), the manifest names next_value float32 "
        "(?, 1), next_values float32 (?, 10)",
    ),
    "size": (
        {"window": (TensorProto.FLOAT, [None, None, 2])},
        SINE_OUTPUTS,
        "window float32 (?, ?, 2)",
    ),
    "dtype": ({"window": (TensorProto.DOUBLE, [None, None, 1])}, SINE_OUTPUTS, "window float64"),
    "rank": ({"window": (TensorProto.FLOAT, [None, None])}, SINE_OUTPUTS, "window float32 (?, ?)"),
}


@pytest.mark.parametrize("case", OTHER_GRAPHS)
def test_another_graphs_onnx_file_is_named_with_both_signatures(case, exported_run, tmp_path):
    inputs, outputs, fragment = OTHER_GRAPHS[case]
    export = tmp_path / "export"
    shutil.copytree(exported_run("lstm") / "export", export)
    write_graph(export / "onnx" / "sine_forecaster.onnx", inputs, outputs)
    with pytest.raises(UserError) as error:
        load_graph(export)
    message = str(error.value)
    assert "sine_forecaster.onnx is not the graph sine_forecaster that manifest.json" in message
    assert fragment in message and "put the export's own file back" in message


def test_predict_names_another_graphs_file_in_one_line(exported_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(exported_run("lstm") / "export", run_dir / "export")
    inputs, outputs, fragment = OTHER_GRAPHS["another graph"]
    write_graph(run_dir / "export" / "onnx" / "sine_forecaster.onnx", inputs, outputs)
    result = run_without_tensorflow("serving.predict", run_dir, "--window", "0.1,0.2")
    assert_user_error(result.returncode, result.stderr, "sine_forecaster.onnx is not", fragment)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--threads", "-3"], "argument --threads: must be a positive integer, got '-3'"),
        (["--threads", "0"], "argument --threads: must be a positive integer, got '0'"),
        (["--seed", "-1"], "argument --seed: must be an integer >= 0, got '-1'"),
    ],
)
def test_predict_refuses_values_no_flag_takes(argv, fragment, exported_run, cli_error):
    """Checked while parsing, before the run's task is known (--seed is charlm's)."""
    cli_error(predict_main, [exported_run("lstm"), "--window", "0.1,0.2", *argv], fragment)


@pytest.mark.parametrize("main", [predict_main, clients_main])
def test_a_missing_run_directory_is_named(main, tmp_path, cli_error):
    """Not the manifest it would hold, as export and translate say."""
    cli_error(main, [tmp_path / "nonexistent", "x"], f"run directory not found: {tmp_path}")


def test_predict_warns_when_the_window_is_not_the_training_length(exported_run, capsys):
    run_dir = exported_run("lstm")  # trained on windows of 10
    capsys.readouterr()
    assert predict_main([str(run_dir), "--window", "0.1,0.2,0.3"]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "warning: the window has 3 values; the model was trained on windows of 10: the "
        "forecast may be less accurate"
    ]
    assert predict_main([str(run_dir), "--window=" + ",".join(f"{v:.6f}" for v in WINDOW)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_empty_inputs_are_refused_not_run(tiny_runs):
    """onnxruntime aborts the process on a char_lm input with no steps: ExportedGraph refuses
    any empty input first (run in a child process, so that an abort fails the test)."""
    code = (
        "import sys, numpy as np\n"
        "from serving.errors import UserError\n"
        "from serving.runtime.graph import load_graph\n"
        "graph = load_graph(__import__('pathlib').Path(sys.argv[1]), 'char_lm')\n"
        "for shape in ((2, 0), (0, 3)):\n"
        "    try:\n"
        "        graph(**{graph.inputs[0]['name']: np.zeros(shape, np.int32)})\n"
        "    except UserError as error:\n"
        "        print(error)\n"
    )
    export_dir = CHARLM.exported(tiny_runs) / "export"
    done = subprocess.run(
        [sys.executable, "-c", code, str(export_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(" is empty (shape " in line for line in lines), lines
    assert lines[0].endswith("(2, 0))") and lines[1].endswith("(0, 3))")


def test_ids_outside_the_vocabulary_are_refused_by_name(tiny_runs, tmp_path):
    """ONNX Gather wraps a negative id and fails on one past its table: the manifest's range
    refuses both, in ExportedGraph and so in serving.predict (here with a vocabulary file that
    has more characters than the graph's Embedding). A manifest without ranges still works,
    and an id that int32 cannot hold is refused rather than wrapped."""
    export_dir = CHARLM.exported(tiny_runs) / "export"
    graph = load_graph(export_dir, "lm_step")
    size = graph.inputs[0]["range"][1]
    state = np.zeros((1, graph.inputs[1]["shape"][1]), np.float32)
    for bad in (size, 100_000, -1):
        with pytest.raises(UserError, match=f"input character holds {bad}, outside its range 0 to"):
            graph(character=np.array([[bad]]), state_0_h=state)
    copy = tmp_path / "run" / "export"
    shutil.copytree(export_dir, copy)
    vocab = json.loads((copy / "vocab" / "vocab.json").read_text(encoding="utf-8"))
    assert len(vocab["characters"]) == size
    vocab["characters"].append("\u2603")  # id `size`
    (copy / "vocab" / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    result = run_without_tensorflow("serving.predict", copy.parent, "--prefix", "\u2603")
    want = f"input character holds {size}, outside its range 0 to {size - 1}"
    assert_user_error(result.returncode, result.stderr, want)
    manifest = json.loads((copy / "manifest.json").read_text())
    for entry in manifest["graphs"]:
        for spec in entry["inputs"]:
            spec.pop("range", None)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    old = load_graph(copy, "lm_step")
    assert old(character=np.array([[size - 1]]), state_0_h=state)["logits"].shape == (1, size)
    with pytest.raises(UserError, match=r"holds 1099511627776, outside its range .* int32 holds"):
        old(character=np.array([[2**40]]), state_0_h=state)


def test_inputs_the_graph_cannot_run_on_together_are_named(tiny_runs):
    """Two batch sizes are refused before the run; any other mismatch onnxruntime finds is a
    UserError naming the inputs' shapes, not onnxruntime's exception."""
    graph = load_graph(CHARLM.exported(tiny_runs) / "export", "lm_step")
    feed = {"character": np.array([[2], [3]], np.int32), "state_0_h": np.zeros((1, 16), np.float32)}
    with pytest.raises(UserError, match=r"same batch size .* got character 2, state_0_h 1"):
        graph(**feed)
    with pytest.raises(UserError, match=r"inputs character \(2, 1\), state_0_h \(1, 16\) together"):
        graph.run(feed)
