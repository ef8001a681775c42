"""The TensorFlow-free runtime on a sine export: CSV input with TF unimportable, the blocker
itself, input checks, damaged files and refusals that are not a task's (the battery in
test_sine.py serves the forecasts and checks their refusals)."""

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from keras_rnn.errors import UserError
from serving.predict import main as predict_main
from serving.runtime import forecast, load_graph
from tests.conftest import assert_user_error, run_without_tensorflow
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
