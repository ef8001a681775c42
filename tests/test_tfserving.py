"""python -m serving.tfserving on a tiny sine run and a tiny translate run: the folder TF Serving
mounts (its config files parsed by TF Serving's protos, the SavedModels' signatures those of the
manifests), built with TensorFlow blocked; the refusals, --force, Ctrl-C, the Dockerfile's pin,
and the container itself where a Docker engine answers."""

from __future__ import annotations

import filecmp
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from keras_rnn.runs import write_json
from serving.errors import UserError
from serving.tfserving import commands, config
from serving.tfserving.__main__ import main
from serving.tfserving.folder import write_model_base
from tests.conftest import REPO, run_without_tensorflow
from tests.test_runs import make_run, snapshot
from tests.test_translate import LUONG


@pytest.fixture(scope="module")
def runs(exported_run, tiny_runs) -> tuple[Path, Path]:
    """The exported tiny sine (LSTM) and translate (Luong, GRU) runs. Not to be modified."""
    return exported_run("lstm"), LUONG.exported(tiny_runs)


@pytest.fixture(scope="module")
def built(runs, tmp_path_factory) -> tuple[Path, str]:
    """The folder of both runs, written by the command with TensorFlow unimportable, and
    what it printed."""
    out = tmp_path_factory.mktemp("tfserving") / "models"
    result = run_without_tensorflow("serving.tfserving", *runs, "--out", out)
    assert result.returncode == 0, result.stderr
    return out, result.stdout


def savedmodel_entries(*run_dirs: Path) -> list[dict]:
    entries = []
    for run_dir in run_dirs:
        manifest = json.loads((run_dir / "export" / "manifest.json").read_text())
        entries += [entry for entry in manifest["graphs"] if "savedmodel" in entry["formats"]]
    return entries


def batching_parameters_class():
    """TF Serving's ``BatchingParameters``. tensorflow-serving-api does not ship
    tensorflow_serving/servables/tensorflow/session_bundle_config.proto, so the message is
    declared here as that file declares it (fields and numbers of TF Serving 2.21)."""
    try:
        module = "tensorflow_serving.servables.tensorflow.session_bundle_config_pb2"
        return importlib.import_module(module).BatchingParameters
    except ModuleNotFoundError:
        pass
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = proto.message_type.add(name="BatchingParameters")
    wrapped = [
        ("max_batch_size", 1, "Int64Value"),
        ("batch_timeout_micros", 2, "Int64Value"),
        ("max_enqueued_batches", 3, "Int64Value"),
        ("num_batch_threads", 4, "Int64Value"),
        ("thread_pool_name", 5, "StringValue"),
        ("enable_large_batch_splitting", 8, "BoolValue"),
        ("max_execution_batch_size", 9, "Int64Value"),
    ]
    for name, number, wrapper in wrapped:
        message.field.add(
            name=name,
            number=number,
            label=field.LABEL_OPTIONAL,
            type=field.TYPE_MESSAGE,
            type_name=f".google.protobuf.{wrapper}",
        )
    message.field.add(
        name="allowed_batch_sizes", number=6, label=field.LABEL_REPEATED, type=field.TYPE_INT64
    )
    message.field.add(
        name="pad_variable_length_inputs",
        number=7,
        label=field.LABEL_OPTIONAL,
        type=field.TYPE_BOOL,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(proto.SerializeToString())
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    return message_factory.GetMessageClass(descriptor)


def test_the_command_runs_without_tensorflow_and_prints_how_to_serve(built, runs):
    out, stdout = built
    assert f"--volume {out}:/models:ro keras-rnn-tfserving" in stdout
    assert "--publish 8500:8500 --publish 8501:8501" in stdout
    assert f"docker build --tag keras-rnn-tfserving - < {commands.DOCKERFILE}" in stdout
    for entry in savedmodel_entries(*runs):
        assert f"  {commands.curl_command(entry)}\n" in stdout + "\n"
    url = "http://localhost:8501/v1/models"
    window = '{"inputs": {"window": [[[0.5], [0.5]]]}}'
    assert f"curl -s -X POST {url}/sine_forecaster:predict -d '{window}'" in stdout
    text = '{"inputs": {"text": ["text"]}}'
    assert f"curl -s -X POST {url}/translate:predict -d '{text}'" in stdout


def test_models_config_serves_exactly_the_savedmodel_graphs(built, runs):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    out, _ = built
    text = (out / "models.config").read_text()
    parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    models = parsed.model_config_list.config
    names = [entry["name"] for entry in savedmodel_entries(*runs)]
    assert names == ["sine_forecaster", "translate", "encoder", "decoder_step"]
    assert [model.name for model in models] == names
    for model in models:
        assert model.base_path == f"/models/{model.name}"
        assert model.model_platform == "tensorflow"
        assert list(model.model_version_policy.specific.versions) == [1]
        assert sorted(os.listdir(out / model.name)) == ["1"]
        assert (out / model.name / "1" / "saved_model.pb").is_file()
    assert sorted(os.listdir(out)) == sorted([*names, "batching_parameters.txt", "models.config"])


def test_batching_parameters_parse_and_batch_only_fixed_shapes(built):
    from google.protobuf import text_format

    out, _ = built
    batching = batching_parameters_class()
    server = text_format.Parse((out / "batching_parameters.txt").read_text(), batching())
    assert server.max_batch_size.value == 128 and server.num_batch_threads.value == 4
    assert server.batch_timeout_micros.value == 1000 and server.max_enqueued_batches.value == 4
    assert not server.pad_variable_length_inputs
    # Only translate's inputs (a batch of texts) vary in the batch dimension alone.
    per_model = sorted(path.parent.parent.name for path in out.glob("*/1/batching_params.pbtxt"))
    assert per_model == ["translate"]
    own = text_format.Parse((out / "translate/1/batching_params.pbtxt").read_text(), batching())
    assert own.max_batch_size.value == 128 and not own.pad_variable_length_inputs


def test_copies_are_the_exported_files_with_the_umask_s_modes(built, runs):
    out, _ = built
    umask = os.umask(0)
    os.umask(umask)
    for entry, run_dir in [(e, r) for r in runs for e in savedmodel_entries(r)]:
        source, copy = run_dir / "export" / entry["savedmodel"], out / entry["name"] / "1"
        for path in source.rglob("*"):
            twin = copy / path.relative_to(source)
            assert twin.is_dir() if path.is_dir() else filecmp.cmp(path, twin, shallow=False)
            if path.is_file():
                assert twin.stat().st_mode & 0o777 == 0o666 & ~umask, twin


def test_the_copied_signatures_are_the_manifests(built, runs):
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 (registers the ops of the translate graph)

    out, _ = built
    for entry in savedmodel_entries(*runs):
        signature = tf.saved_model.load(str(out / entry["name"] / "1")).signatures
        default = signature["serving_default"]
        inputs = default.structured_input_signature[1]
        assert {name: spec.dtype.name for name, spec in inputs.items()} == {
            spec["name"]: spec["dtype"] for spec in entry["inputs"]
        }, entry["name"]
        assert {name: spec.dtype.name for name, spec in default.structured_outputs.items()} == {
            spec["name"]: spec["dtype"] for spec in entry["outputs"]
        }, entry["name"]


def test_two_runs_with_one_graph_name_are_refused(runs, tmp_path, cli_error):
    twin = tmp_path / "twin"
    shutil.copytree(runs[0], twin)
    out = tmp_path / "models"
    cli_error(main, [runs[0], twin, "--out", out], f"both {runs[0]} and {twin}", "sine_forecaster")
    cli_error(main, [runs[0], runs[0], "--out", out], "is given twice")
    assert sorted(os.listdir(tmp_path)) == ["twin"]


def test_a_run_without_an_export_is_refused(trained_run, tmp_path, cli_error):
    out = tmp_path / "models"
    cli_error(main, [trained_run("lstm"), "--out", out], "has no export", "python -m export")
    cli_error(main, [tmp_path / "nowhere", "--out", out], "no run directory at")
    assert not out.exists()


def test_an_out_folder_not_ours_is_left_alone(runs, tmp_path, cli_error):
    out = tmp_path / "models"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for force in ([], ["--force"]):
        cli_error(main, [runs[0], "--out", out, *force], "has no models.config written by")
    assert os.listdir(out) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert sorted(os.listdir(tmp_path)) == ["models"]


def test_out_is_never_inside_a_run_or_an_export(tmp_path):
    run = make_run(tmp_path / "run", "model.keras")
    export = run / "export"
    export.mkdir()
    write_json(export / "manifest.json", {"task": "sine", "opset": 17, "graphs": []})
    before = snapshot(tmp_path)
    for out, kind in ((run / "models", "run directory"), (export / "models", "export")):
        for force in (False, True):
            with pytest.raises(UserError, match=re.escape(f"--out {out} is inside the {kind} ")):
                write_model_base([], out, force)
    assert snapshot(tmp_path) == before


def test_force_replaces_only_a_folder_of_ours(runs, tmp_path, cli_error, capsys):
    out = tmp_path / "models"
    assert main([str(runs[0]), "--out", str(out)]) == 0
    cli_error(main, [runs[1], "--out", out], "exists: pass --force to replace it")
    assert sorted(os.listdir(out)) == [
        "batching_parameters.txt",
        "models.config",
        "sine_forecaster",
    ]
    assert main([str(runs[1]), "--out", str(out), "--force"]) == 0
    assert sorted(os.listdir(out)) == [
        "batching_parameters.txt",
        "decoder_step",
        "encoder",
        "models.config",
        "translate",
    ]
    assert sorted(os.listdir(tmp_path)) == ["models"]  # no temporary left beside it
    (out / "translate" / "2").mkdir()  # a version added by hand
    cli_error(main, [runs[1], "--out", out, "--force"], "also holds translate/2")
    assert (out / "translate" / "2").is_dir()


def test_serve_without_docker_is_one_line(runs, tmp_path, monkeypatch, cli_error):
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker there
    out = tmp_path / "models"
    cli_error(main, [runs[0], "--out", out, "--serve"], "docker is not installed")
    assert not out.exists()


def test_ctrl_c_while_building_keeps_the_old_folder(runs, tmp_path):
    """SIGINT while the new folder is being copied: status 130, one line, the folder as it
    was and no temporary beside it."""
    out = tmp_path / "models"
    assert main([str(runs[0]), "--out", str(out)]) == 0
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    slow_copy = (
        "import runpy, shutil, sys, time\n"
        "copytree = shutil.copytree\n"
        "def slow(*args, **kwargs):\n"
        "    copytree(*args, **kwargs)\n"
        "    time.sleep(60)\n"
        "shutil.copytree = slow\n"
        "sys.argv = ['serving.tfserving', *sys.argv[1:]]\n"
        "runpy.run_module('serving.tfserving', run_name='__main__', alter_sys=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", slow_copy, str(runs[1]), "--out", str(out), "--force"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT as a terminal delivers it, even where this test runs with it ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp_path.glob(".models.tmp-*/*/1")):
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.splitlines() == [f"interrupted: {out} is as it was"]
    assert sorted(os.listdir(tmp_path)) == ["models"]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def test_the_dockerfile_pins_the_installed_tensorflow():
    dockerfile = commands.DOCKERFILE.read_text()
    tags = re.findall(r"^FROM\s+tensorflow/serving:(\S+)\s*$", dockerfile, flags=re.MULTILINE)
    assert tags == [importlib.metadata.version("tensorflow")]
    entrypoint = re.search(r"^ENTRYPOINT (\[.*?\])$", dockerfile, flags=re.MULTILINE | re.DOTALL)
    flags = json.loads(entrypoint[1].replace("\\\n", ""))
    assert flags[0] == "/usr/bin/tensorflow_model_server"
    for flag in (
        f"--model_config_file={config.MOUNT}/{config.MODELS_CONFIG}",
        f"--batching_parameters_file={config.MOUNT}/{config.BATCHING_FILE}",
        "--enable_batching",
        "--enable_per_model_batching_parameters",
        "--rest_api_port=8501",
        "--port=8500",
        "--enable_model_warmup=true",
    ):
        assert flag in flags


def docker_engine() -> None:
    """Skip the test unless a Docker engine answers here."""
    if shutil.which("docker") is None:
        pytest.skip("no Docker engine here: docker is not installed")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        said = [line for line in info.stderr.splitlines() if line.strip()] or ["docker info failed"]
        pytest.skip(f"no Docker engine here: {said[-1]}")


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def wait_until_served(base: str, names: list[str], container: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            states = [
                json.loads(urllib.request.urlopen(f"{base}/v1/models/{name}", timeout=5).read())
                for name in names
            ]
            if all(s["model_version_status"][0]["state"] == "AVAILABLE" for s in states):
                return
        except OSError:
            pass
        time.sleep(1)
    logs = subprocess.run(["docker", "logs", container], capture_output=True, text=True)
    pytest.fail(f"TF Serving did not serve {names} within 300 s:\n{logs.stderr[-4000:]}")


def test_the_container_serves_what_tensorflow_answers(built, runs):
    """docker build and docker run as the command prints them (ports published at random),
    REST predictions equal to TensorFlow's on the same SavedModels, sine windows of different
    lengths sent at once (not batched, so each gets its own answer)."""
    docker_engine()
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 (registers the ops of the translate graph)

    out, _ = built
    with commands.DOCKERFILE.open("rb") as dockerfile:
        image = subprocess.run(
            commands.build_argv(), stdin=dockerfile, capture_output=True, text=True, timeout=1800
        )
    assert image.returncode == 0, image.stderr[-4000:]
    argv = commands.run_argv(out, publish=("127.0.0.1::8501",), detach=True)
    started = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        port = subprocess.run(
            ["docker", "port", container, "8501/tcp"], capture_output=True, text=True, timeout=60
        ).stdout.splitlines()[0]
        base = f"http://127.0.0.1:{port.rsplit(':', 1)[1]}"
        names = [entry["name"] for entry in savedmodel_entries(*runs)]
        wait_until_served(base, names, container)

        sine = tf.saved_model.load(str(out / "sine_forecaster/1")).signatures["serving_default"]
        windows = [np.sin(np.arange(n, dtype=np.float32) / 3)[None, :, None] for n in range(4, 20)]
        with ThreadPoolExecutor(8) as pool:
            answers = pool.map(
                lambda w: post(
                    f"{base}/v1/models/sine_forecaster:predict", {"inputs": {"window": w.tolist()}}
                ),
                windows,
            )
            for window, answer in zip(windows, answers, strict=True):
                expected = sine(window=tf.constant(window))["next_values"].numpy()
                np.testing.assert_allclose(answer["outputs"]["next_values"], expected, atol=1e-5)

        texts = ["23 November 2026", "2026年11月23日", ""]
        translate = tf.saved_model.load(str(out / "translate/1")).signatures["serving_default"]
        expected = translate(text=tf.constant(texts))["translation"].numpy()
        answer = post(f"{base}/v1/models/translate:predict", {"inputs": {"text": texts}})
        assert answer == {"outputs": [text.decode() for text in expected]}
    finally:
        subprocess.run(["docker", "rm", "--force", container], capture_output=True, timeout=120)
