"""The export's files for serving: Triton's model repository (``triton/GRAPH/config.pbtxt``,
``triton/GRAPH/1/model.onnx``) and TF Serving's warm-up requests
(``savedmodel/GRAPH/1/assets.extra/tf_serving_warmup_requests``), on the tiny LSTM sine run
and the tiny Luong translate run (strings in its ``translate`` graph)."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis.prediction_log_pb2 import PredictionLog
from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig

from export import triton, warmup
from keras_rnn.errors import UserError
from keras_rnn.runs import not_an_export
from tests.test_translate import LUONG

# Written out here rather than read from export.triton, so that a wrong entry there shows.
TRITON_TYPES = {"float32": "TYPE_FP32", "int32": "TYPE_INT32", "string": "TYPE_STRING"}
NUMPY_TYPES = {"TYPE_FP32": np.float32, "TYPE_INT32": np.int32}
ONNX_GRAPHS = {"sine": ["sine_forecaster"], "translate": ["decoder_step", "encoder"]}


@pytest.fixture(scope="module", params=["sine", "translate"])
def export_dir(request, exported_run, tiny_runs) -> Path:
    """The export of the tiny LSTM sine run, or of the tiny Luong translate run."""
    if request.param == "sine":
        return exported_run("lstm") / "export"
    return LUONG.exported(tiny_runs) / "export"


def manifest_graphs(export_dir: Path) -> list[dict]:
    return json.loads((export_dir / "manifest.json").read_text())["graphs"]


def read_config(path: Path) -> ModelConfig:
    return text_format.Parse(path.read_text(encoding="utf-8"), ModelConfig())


def test_triton_folders_are_the_onnx_graphs(export_dir):
    """One folder per graph written to ONNX (translate's string graph has none), and the
    export with them is still one that --force recognises as ours."""
    task = json.loads((export_dir / "manifest.json").read_text())["task"]
    assert sorted(p.name for p in (export_dir / "triton").iterdir()) == ONNX_GRAPHS[task]
    for name in ONNX_GRAPHS[task]:
        assert sorted(p.name for p in (export_dir / "triton" / name).iterdir()) == [
            "1",
            "config.pbtxt",
        ]
        assert [p.name for p in (export_dir / "triton" / name / "1").iterdir()] == ["model.onnx"]
    assert not_an_export(export_dir) is None
    triton.check_repository(export_dir, manifest_graphs(export_dir))  # what verify runs


def test_triton_configs_match_the_manifest(export_dir):
    for entry in manifest_graphs(export_dir):
        if "onnx" not in entry["formats"]:
            continue
        config = read_config(export_dir / "triton" / entry["name"] / "config.pbtxt")
        assert (config.name, config.backend) == (entry["name"], "onnxruntime")
        # Every tensor of these graphs has a variable batch dimension, Triton's batch axis.
        assert config.max_batch_size == triton.MAX_BATCH_SIZE > 0
        assert config.HasField("dynamic_batching")
        for tensors, specs in ((config.input, entry["inputs"]), (config.output, entry["outputs"])):
            assert [(t.name, DataType.Name(t.data_type), list(t.dims)) for t in tensors] == [
                (
                    spec["name"],
                    TRITON_TYPES[spec["dtype"]],
                    [-1 if size is None else size for size in spec["shape"][1:]],
                )
                for spec in specs
            ]
            assert not any(t.HasField("reshape") for t in tensors)


def test_triton_model_is_the_onnx_file_and_runs_batched(export_dir):
    """model.onnx is onnx/GRAPH.onnx byte for byte, and onnxruntime runs it fed by the
    config's input names and types, with any batch size on the first axis."""
    for entry in manifest_graphs(export_dir):
        if "onnx" not in entry["formats"]:
            continue
        folder = export_dir / "triton" / entry["name"]
        model = folder / "1" / "model.onnx"
        assert model.read_bytes() == (export_dir / entry["onnx"]).read_bytes()
        assert not model.is_symlink()
        config = read_config(folder / "config.pbtxt")
        session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        assert {i.name for i in session.get_inputs()} == {i.name for i in config.input}
        assert {o.name for o in session.get_outputs()} == {o.name for o in config.output}
        for batch in (1, 3):
            feed = {
                i.name: np.ones(
                    [batch, *(2 if d == -1 else d for d in i.dims)],
                    NUMPY_TYPES[DataType.Name(i.data_type)],
                )
                for i in config.input
            }
            outputs = session.run([o.name for o in config.output], feed)
            for output, value in zip(config.output, outputs, strict=True):
                assert value.shape[0] == batch and value.ndim == len(output.dims) + 1


def warmup_records(savedmodel_dir: Path) -> list[PredictionLog]:
    path = savedmodel_dir / "assets.extra" / "tf_serving_warmup_requests"
    return [
        PredictionLog.FromString(record)
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    ]


def test_warmup_requests_run_on_the_savedmodel(export_dir):
    """Each SavedModel's warm-up file holds predict requests, batch 1 and larger, for its
    ``serving_default`` signature, which runs on every one (as TF Serving does at load)."""
    for entry in manifest_graphs(export_dir):
        savedmodel_dir = export_dir / entry["savedmodel"]
        records = warmup_records(savedmodel_dir)
        assert 2 <= len(records) <= 1000
        signature = tf.saved_model.load(str(savedmodel_dir)).signatures["serving_default"]
        specs = signature.structured_input_signature[1]
        batches = set()
        for log in records:
            assert log.WhichOneof("log_type") == "predict_log"
            request = log.predict_log.request
            assert request.model_spec.name == entry["name"]
            assert request.model_spec.signature_name == "serving_default"
            assert set(request.inputs) == set(specs) == {i["name"] for i in entry["inputs"]}
            for name, proto in request.inputs.items():
                assert tf.as_dtype(proto.dtype) == specs[name].dtype, name
            inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
            outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
            assert set(outputs) == {o["name"] for o in entry["outputs"]}
            (batch,) = {len(value) for value in inputs.values()}
            assert all(value.shape[0] == batch for value in outputs.values())
            batches.add(batch)
            if entry["name"] == "translate":  # texts of the run's test data, translated
                assert any(text for text in inputs["text"])
                assert outputs["translation"].dtype == tf.string
        assert 1 in batches and max(batches) > 1


def test_data_types():
    assert triton.data_type("float32") == DataType.Value("TYPE_FP32")
    assert triton.data_type("int32") == DataType.Value("TYPE_INT32")
    assert triton.data_type("int64") == DataType.Value("TYPE_INT64")
    assert triton.data_type("bool") == DataType.Value("TYPE_BOOL")
    assert triton.data_type("string") == DataType.Value("TYPE_STRING")
    for name, value in triton.DATA_TYPES.items():  # every name maps to a real DataType
        assert DataType.Name(triton.data_type(name)) == value != "TYPE_INVALID"
    with pytest.raises(ValueError, match="complex64"):
        triton.data_type("complex64")


def tensor(name: str, dtype: str, shape: list) -> dict:
    return {"name": name, "dtype": dtype, "shape": shape}


def test_a_fixed_first_dimension_means_no_batching():
    entry = {
        "name": "fixed",
        "inputs": [tensor("x", "float32", [None, 4]), tensor("n", "int64", [1, None])],
        "outputs": [tensor("y", "float32", [None])],
    }
    config = read_config_text(triton.config_text(entry))
    assert config == triton.model_config(entry)
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert [list(t.dims) for t in config.input] == [[-1, 4], [1, -1]]
    assert [list(t.dims) for t in config.output] == [[-1]]


def test_a_batch_only_tensor_is_reshaped():
    """A tensor whose only dimension is the batch gets dims [1] and an empty reshape, since
    Triton refuses empty dims."""
    entry = {
        "name": "scores",
        "inputs": [tensor("x", "float32", [None, None, 2])],
        "outputs": [tensor("score", "float32", [None])],
    }
    config = read_config_text(triton.config_text(entry))
    assert config.max_batch_size == triton.MAX_BATCH_SIZE
    (x,), (score,) = config.input, config.output
    assert list(x.dims) == [-1, 2] and not x.HasField("reshape")
    assert list(score.dims) == [1] and score.HasField("reshape")
    assert list(score.reshape.shape) == []


def read_config_text(text: str) -> ModelConfig:
    return text_format.Parse(text, ModelConfig())


def test_onnx_names_must_be_the_manifests(exported_run):
    export_dir = exported_run("lstm") / "export"
    (entry,) = manifest_graphs(export_dir)
    triton.check_onnx_names(export_dir / entry["onnx"], entry)
    renamed = entry | {"outputs": [tensor("next_value", "float32", [None, 1])]}
    with pytest.raises(ValueError, match="outputs"):
        triton.check_onnx_names(export_dir / entry["onnx"], renamed)


def test_repository_check_finds_changes(exported_run, tmp_path):
    """What export.verify refuses: a config that is not the manifest's, a model that is not
    the ONNX file, a missing folder."""
    export_dir = tmp_path / "export"
    shutil.copytree(exported_run("lstm") / "export", export_dir)
    graphs = manifest_graphs(export_dir)
    folder = export_dir / "triton" / "sine_forecaster"
    config = folder / "config.pbtxt"
    original = config.read_text()
    config.write_text(
        original.replace(f"max_batch_size: {triton.MAX_BATCH_SIZE}", "max_batch_size: 8")
    )
    with pytest.raises(UserError, match=r"does not match manifest\.json"):
        triton.check_repository(export_dir, graphs)
    config.write_text(original)
    (folder / "1" / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(UserError, match="is not a copy of"):
        triton.check_repository(export_dir, graphs)
    shutil.rmtree(export_dir / "triton")
    with pytest.raises(UserError, match="triton is missing"):
        triton.check_repository(export_dir, graphs)


def test_verify_refuses_a_changed_triton_config(exported_run, tmp_path, cli_error):
    from export.verify import main as verify_main

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run("lstm"), run_dir)
    config = run_dir / "export" / "triton" / "sine_forecaster" / "config.pbtxt"
    config.write_text(config.read_text().replace("TYPE_FP32", "TYPE_FP64"))
    cli_error(verify_main, [run_dir], "config.pbtxt does not match manifest.json", "--force")


def test_warmup_inputs_are_the_parity_samples(exported_run):
    """One request per batch size of parity x sequence length, the same draws as parity."""
    from export.parity import BATCH_SIZES, samples
    from keras_rnn.runs import finished_run, load_trained_model
    from keras_rnn.tasks import load_task

    run, config = finished_run(exported_run("lstm"))
    (graph,) = load_task(config.task).export_graphs(load_trained_model(run), config, run)
    drawn = warmup.warmup_inputs(graph)
    assert len(drawn) == len(BATCH_SIZES) * len(graph.lengths)
    parity_first = samples(graph, np.random.default_rng(0))[: len(drawn)]
    for ours, theirs in zip(drawn, parity_first, strict=True):
        np.testing.assert_array_equal(ours["window"], theirs["window"])
    logged = warmup_records(run.path / "export" / "savedmodel" / graph.name / "1")
    assert [tf.make_ndarray(log.predict_log.request.inputs["window"]).shape for log in logged] == [
        value["window"].shape for value in drawn
    ]
