"""serving.clients: the REST client's requests, answers and errors against canned HTTP stubs;
both clients and python -m serving.clients against stand-ins that compute (onnxruntime behind
TF Serving's REST API, TensorFlow behind its gRPC API) and against python -m serving.server,
each answer compared with serving.predict's on the same input."""

from __future__ import annotations

import contextlib
import io
import json
import re
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from serving.clients import ModelClient, NotFound, RestClient, connect
from serving.clients.__main__ import main as clients_main
from serving.errors import UserError
from serving.predict import main as predict_main
from serving.runtime import load_graph
from tests.conftest import (
    assert_user_error,
    run_without_tensorflow,
    serve_without_tensorflow,
)
from tests.test_sine import WINDOW
from tests.test_translate import LUONG, QUERIES

WINDOW_FLAG = "--window=" + ",".join(f"{v:.9g}" for v in WINDOW)
SINE_INPUT = {"window": np.asarray(WINDOW, np.float32).reshape(1, -1, 1)}

# ---------------------------------------------------------------- HTTP servers inside a test


class _QuietServer(ThreadingHTTPServer):
    """Handler threads are daemons; a client that left before its answer (the ``slow`` model
    answers after the test that timed out on it has ended) is not a traceback on the stderr of
    whichever test runs then."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` on a free port of 127.0.0.1, on threads; yields its URL."""
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving

    def log_message(self, *args: Any) -> None:  # no access log on stderr
        pass

    def body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def answer(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def metadata_of(name: str, outputs: dict[str, str], inputs: dict[str, str] | None = None) -> dict:
    """A GetModelMetadataResponse in TF Serving's JSON, for dtype names by tensor name: the
    signatures serving_default and sig."""

    def tensors(specs: dict[str, str]) -> dict:
        return {
            n: {"dtype": d, "tensor_shape": {"dim": [{"size": "-1"}]}, "name": f"{n}:0"}
            for n, d in specs.items()
        }

    signature = {"inputs": tensors(inputs or {}), "outputs": tensors(outputs)}
    return {
        "model_spec": {"name": name, "signature_name": "", "version": "1"},
        "metadata": {
            "signature_def": {"signature_def": {"serving_default": signature, "sig": signature}}
        },
    }


AVAILABLE = {
    "model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}


def canned_api() -> tuple[type[BaseHTTPRequestHandler], list, threading.Event]:
    """A stub of TF Serving's REST API with fixed answers by model name: ``echo`` (three
    outputs), ``single`` (one output, answered unnamed), ``flaky`` (closes each kept-alive
    connection silently), ``missing`` (404), ``broken`` (500, not JSON) and ``slow`` (no answer
    until the event is set). Returns the handler, the requests it saw (method, path, body,
    connection) and the event."""
    seen: list[tuple[str, str, Any, int]] = []
    release = threading.Event()

    class Canned(_Handler):
        def do_GET(self) -> None:
            self.reply(None)

        def do_POST(self) -> None:
            self.reply(self.body())

        def reply(self, body: Any) -> None:
            seen.append((self.command, self.path, body, self.client_address))
            model = re.match(r"/v1/models/([^/:]+)", self.path).group(1)
            if model == "missing":
                self.answer(404, {"error": "Servable not found for request: Latest(missing)"})
            elif model == "broken":
                self.answer(500, b"internal failure\n  at step 2", "text/plain")
            elif model == "slow":
                release.wait(60)
                self.answer(200, AVAILABLE)
            elif self.path.endswith("/metadata"):
                outputs = {"y": "DT_FLOAT", "ids": "DT_INT32", "words": "DT_STRING"}
                self.answer(
                    200, metadata_of(model, {"y": "DT_FLOAT"} if model == "single" else outputs)
                )
            elif self.path.endswith(":predict") and model == "single":
                self.answer(200, {"outputs": [[0.25], [0.5]]})
            elif self.path.endswith(":predict"):
                outputs = {"y": [[0.1, 2.5]], "ids": [[1, 2]], "words": [["ab", "ç"]]}
                self.answer(200, {"outputs": outputs})
            else:
                self.answer(200, AVAILABLE)
            if model == "flaky":
                self.close_connection = True  # without saying so: the client finds out next time

    return Canned, seen, release


@pytest.fixture
def canned():
    handler, seen, release = canned_api()
    with http_server(handler) as url:
        yield url, seen
        release.set()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------ (a) REST: conversions


def test_rest_sends_columnar_json_and_types_the_outputs(canned):
    url, seen = canned
    client = RestClient(url)
    inputs = {
        "x": np.array([[0.5, -1.25]], np.float32),
        "ids": np.array([[3, 4]], np.int32),
        "text": np.array(["23 November", "ñ"], dtype=object),
        "raw": [b"\xff"],
    }
    outputs = client.predict("echo", inputs, version=2, signature_name="sig")
    method, path, body, _ = seen[0]
    assert (method, path) == ("POST", "/v1/models/echo/versions/2:predict")
    assert body == {
        "signature_name": "sig",
        "inputs": {
            "x": [[0.5, -1.25]],
            "ids": [[3, 4]],
            "text": ["23 November", "ñ"],
            "raw": [{"b64": "/w=="}],
        },
    }
    assert seen[1][:2] == ("GET", "/v1/models/echo/versions/2/metadata")  # the dtypes, once
    assert outputs["y"].dtype == np.float32 and outputs["ids"].dtype == np.int32
    np.testing.assert_array_equal(outputs["y"], np.array([[0.1, 2.5]], np.float32))
    assert outputs["words"].dtype == object and outputs["words"].tolist() == [["ab", "ç"]]
    client.predict("echo", {"x": [1.0]})
    assert [request[1] for request in seen[2:]] == [
        "/v1/models/echo:predict",
        "/v1/models/echo/metadata",
    ]
    client.predict("echo", {"x": [1.0]})
    assert len(seen) == 5  # metadata is not asked for again


def test_rest_one_unnamed_output_takes_the_signatures_name(canned):
    url, _ = canned
    outputs = RestClient(url).predict("single", {"x": [[1.0], [2.0]]})
    assert list(outputs) == ["y"] and outputs["y"].dtype == np.float32
    np.testing.assert_array_equal(outputs["y"], [[0.25], [0.5]])


def test_rest_status_and_metadata_paths(canned):
    url, seen = canned
    client = RestClient(url.removeprefix("http://"))  # HOST:PORT means http
    assert client.url == url
    assert client.status("echo") == AVAILABLE
    assert client.metadata("echo", version=3)["model_spec"]["name"] == "echo"
    assert [request[:2] for request in seen] == [
        ("GET", "/v1/models/echo"),
        ("GET", "/v1/models/echo/versions/3/metadata"),
    ]
    assert seen[0][3] == seen[1][3]  # one kept-alive connection (same client port)


def test_rest_replaces_a_connection_the_server_closed(canned):
    url, seen = canned
    client = RestClient(url)
    assert client.status("flaky") == client.status("flaky") == AVAILABLE
    assert len(seen) == 2 and seen[0][3] != seen[1][3]


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_rest_refuses_nan_and_infinity_before_sending(canned, value):
    url, seen = canned
    with pytest.raises(UserError) as error:
        RestClient(url).predict("echo", {"window": np.array([[[0.5], [value]]], np.float32)})
    assert str(error.value) == (
        "input window holds NaN or infinity, which JSON cannot carry: give finite values only"
    )
    assert seen == []


def test_rest_errors_are_one_line(canned):
    url, _ = canned
    client = RestClient(url, timeout=0.5)
    with pytest.raises(NotFound) as error:
        client.predict("missing", {"x": [1.0]}, version=4)
    assert str(error.value) == (
        f"model 'missing' version 4 is not served at {url}: "
        "Servable not found for request: Latest(missing) (HTTP 404)"
    )
    with pytest.raises(UserError) as error:
        client.status("broken")
    assert str(error.value) == (
        f"the server at {url} answered HTTP 500 Internal Server Error: internal failure at step 2"
    )
    with pytest.raises(UserError) as error:
        client.status("slow")
    assert str(error.value) == f"no answer from {url} within 0.5 s (timeout): is it overloaded?"
    assert client.status("echo") == AVAILABLE  # the client goes on after a timeout


def test_rest_refused_connection_and_bad_urls():
    port = free_port()
    with pytest.raises(UserError) as error:
        RestClient(f"http://127.0.0.1:{port}").status("sine_forecaster")
    assert str(error.value) == (
        f"cannot connect to http://127.0.0.1:{port}: connection refused — is the server running?"
    )
    for url in ("ftp://example.org", "http://127.0.0.1:port", "http://"):
        with pytest.raises(UserError, match="is not an HTTP address: give http://HOST:PORT"):
            RestClient(url)
    with pytest.raises(UserError, match="protocol 'soap': choose one of rest, grpc"):
        connect(protocol="soap")


def test_the_cli_reports_a_refused_connection_in_one_line(exported_run, cli_error):
    port = free_port()
    argv = [exported_run("lstm"), WINDOW_FLAG, "--url", f"127.0.0.1:{port}"]
    cli_error(clients_main, argv, f"cannot connect to http://127.0.0.1:{port}: connection refused")
    cli_error(clients_main, [*argv, "--protocol", "soap"], "--protocol: invalid choice: 'soap'")
    cli_error(clients_main, [*argv, "--timeout", "0"], "--timeout: must be a positive number")
    cli_error(clients_main, [*argv, "--prefix", "a"], "--prefix: not an option for sine runs")


# ------------------------------------------- a TF Serving REST stand-in that runs onnxruntime


def onnx_rest_stand_in(export_dir: Path) -> tuple[type[BaseHTTPRequestHandler], list]:
    """TF Serving's REST API (status, metadata, columnar predict) over the ONNX graphs of an
    export, version 1 each; returns the handler and the (method, path) of each request."""
    manifest = json.loads((export_dir / "manifest.json").read_text())
    entries = {entry["name"]: entry for entry in manifest["graphs"] if "onnx" in entry}
    graphs = {name: load_graph(export_dir, name) for name in entries}
    dtypes = {"float32": "DT_FLOAT", "int32": "DT_INT32", "int64": "DT_INT64"}
    seen: list[tuple[str, str]] = []

    class OnnxStandIn(_Handler):
        def do_GET(self) -> None:
            self.reply(None)

        def do_POST(self) -> None:
            self.reply(self.body())

        def reply(self, body: Any) -> None:
            seen.append((self.command, self.path))
            found = re.fullmatch(
                r"/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata|:predict)?", self.path
            )
            name, version, verb = found.groups()
            if name not in graphs or version not in (None, "1"):
                which = f"Specific({name}, {version})" if version else f"Latest({name})"
                return self.answer(404, {"error": f"Servable not found for request: {which}"})
            if verb is None:
                return self.answer(200, AVAILABLE)
            if verb == "/metadata":
                specs = {spec["name"]: dtypes[spec["dtype"]] for spec in entries[name]["outputs"]}
                return self.answer(200, metadata_of(name, specs))
            try:
                outputs = graphs[name](**{k: np.asarray(v) for k, v in body["inputs"].items()})
            except UserError as error:
                return self.answer(400, {"error": str(error)})
            self.answer(200, {"outputs": {k: v.tolist() for k, v in outputs.items()}})

    return OnnxStandIn, seen


@contextlib.contextmanager
def onnx_rest_server(run_dir: Path) -> Iterator[tuple[str, list]]:
    handler, seen = onnx_rest_stand_in(run_dir / "export")
    with http_server(handler) as url:
        yield url, seen


def predicted(*argv) -> dict:
    """What serving.predict --json prints (onnxruntime, in this process)."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert predict_main([*map(str, argv), "--json"]) == 0
    return json.loads(out.getvalue())


def served(*argv) -> dict:
    """What python -m serving.clients --json prints (in this process)."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        assert clients_main([*map(str, argv), "--json"]) == 0
    return json.loads(out.getvalue())


def assert_close(actual: Any, expected: Any, atol: float) -> None:
    """Equal JSON values, floats within ``atol``."""
    if isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=atol)
    elif isinstance(expected, dict):
        assert sorted(actual) == sorted(expected)
        for key in expected:
            assert_close(actual[key], expected[key], atol)
    elif isinstance(expected, list):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected, strict=True):
            assert_close(a, e, atol)
    else:
        assert actual == expected


# ------------------------------------------------------ (c) the REST CLI, TensorFlow blocked


def test_rest_cli_answers_as_predict_without_tensorflow(exported_run):
    run_dir = exported_run("lstm")
    with onnx_rest_server(run_dir) as (url, seen):
        result = run_without_tensorflow(
            "serving.clients", run_dir, WINDOW_FLAG, "--url", url, "--json"
        )
        table = run_without_tensorflow("serving.clients", run_dir, WINDOW_FLAG, "--url", url)
    assert result.returncode == 0, result.stderr
    local = run_without_tensorflow("serving.predict", run_dir, WINDOW_FLAG, "--json")
    assert json.loads(result.stdout) == json.loads(local.stdout)  # the same graph: exact
    assert ("POST", "/v1/models/sine_forecaster:predict") in seen
    expected = run_without_tensorflow("serving.predict", run_dir, WINDOW_FLAG)
    assert table.returncode == 0 and table.stdout == expected.stdout


def test_grpc_cli_without_tensorflow_is_one_line(exported_run):
    result = run_without_tensorflow(
        "serving.clients", exported_run("lstm"), WINDOW_FLAG, "--protocol", "grpc"
    )
    assert_user_error(
        result.returncode,
        result.stderr,
        "the gRPC client needs TensorFlow and tensorflow-serving-api",
        "requirements-grpc.txt",
    )


def test_rest_translation_decodes_through_the_servers_encoder_and_step(tiny_runs):
    """The ONNX stand-in has no `translate` model: greedy and beam decoding go step by step
    through its encoder and decoder_step, and translate exactly as serving.predict."""
    run_dir = LUONG.exported(tiny_runs)
    with onnx_rest_server(run_dir) as (url, seen):
        for beam in ("0", "3"):
            argv = [run_dir, *QUERIES, "--beam", beam]
            assert served(*argv, "--url", url) == predicted(*argv)
    assert ("GET", "/v1/models/translate") in seen
    assert ("POST", "/v1/models/decoder_step:predict") in seen


# ----------------------------------------------- (b) a TF Serving gRPC stand-in (TensorFlow)


class SavedModelService:
    """Stands in for the TF Serving container, which is tested only where a Docker engine
    exists: TF Serving's gRPC PredictionService (Predict, GetModelMetadata) and ModelService
    (GetModelStatus) over an export's SavedModels, version 1 each, computed by TensorFlow
    with each model's serving_default signature; NOT_FOUND and INVALID_ARGUMENT as TF
    Serving answers them. ``asked`` lists the models Predict was asked for."""

    def __init__(self, export_dir: Path):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (the translate graph's ops)
        from tensorflow.core.protobuf import saved_model_pb2

        manifest = json.loads((export_dir / "manifest.json").read_text())
        self.tf, self.loaded, self.signatures, self.defs, self.asked = tf, [], {}, {}, []
        for entry in manifest["graphs"]:
            folder = export_dir / entry["savedmodel"]
            self.loaded.append(tf.saved_model.load(str(folder)))  # its functions need it alive
            self.signatures[entry["name"]] = self.loaded[-1].signatures["serving_default"]
            saved = saved_model_pb2.SavedModel.FromString((folder / "saved_model.pb").read_bytes())
            self.defs[entry["name"]] = saved.meta_graphs[0].signature_def["serving_default"]

    def servicers(self) -> tuple[Any, Any]:
        from tensorflow_serving.apis import (
            get_model_metadata_pb2,
            get_model_status_pb2,
            model_service_pb2_grpc,
            predict_pb2,
            prediction_service_pb2_grpc,
        )

        service, tf = self, self.tf

        class Predictions(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):
                signature = service.find(request.model_spec, context)
                service.asked.append(request.model_spec.name)
                expected = signature.structured_input_signature[1]
                if set(request.inputs) != set(expected):
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"input names {sorted(request.inputs)} != {sorted(expected)}",
                    )
                try:
                    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                    outputs = signature(**{k: tf.convert_to_tensor(v) for k, v in inputs.items()})
                except (TypeError, ValueError, tf.errors.InvalidArgumentError) as error:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error).splitlines()[0])
                response = predict_pb2.PredictResponse()
                for name, value in outputs.items():
                    response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
                return response

            def GetModelMetadata(self, request, context):
                service.find(request.model_spec, context)
                signatures = get_model_metadata_pb2.SignatureDefMap()
                signatures.signature_def["serving_default"].CopyFrom(
                    service.defs[request.model_spec.name]
                )
                response = get_model_metadata_pb2.GetModelMetadataResponse()
                response.model_spec.name = request.model_spec.name
                response.model_spec.version.value = 1
                response.metadata["signature_def"].Pack(signatures)
                return response

        class Models(model_service_pb2_grpc.ModelServiceServicer):
            def GetModelStatus(self, request, context):
                service.find(request.model_spec, context)
                response = get_model_status_pb2.GetModelStatusResponse()
                status = response.model_version_status.add()
                status.version, status.state = 1, get_model_status_pb2.ModelVersionStatus.AVAILABLE
                return response

        return Predictions(), Models()

    def find(self, spec: Any, context: grpc.ServicerContext) -> Any:
        version = spec.version.value if spec.HasField("version") else None
        if spec.name not in self.signatures or version not in (None, 1):
            which = f"Specific({spec.name}, {version})" if version else f"Latest({spec.name})"
            context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {which}")
        return self.signatures[spec.name]


@contextlib.contextmanager
def grpc_stand_in(run_dir: Path) -> Iterator[tuple[str, SavedModelService]]:
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    service = SavedModelService(run_dir / "export")
    predictions, models = service.servicers()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(predictions, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(models, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", service
    finally:
        server.stop(None)


def test_grpc_client_answers_as_onnxruntime(exported_run):
    run_dir = exported_run("lstm")
    local = load_graph(run_dir / "export")(**SINE_INPUT)
    with grpc_stand_in(run_dir) as (url, _):
        client = connect(url, "grpc")
        assert isinstance(client, ModelClient)
        status = client.status("sine_forecaster")
        metadata = client.metadata("sine_forecaster", version=1)
        remote = client.predict("sine_forecaster", SINE_INPUT)
        answer = served(run_dir, WINDOW_FLAG, "--protocol", "grpc", "--url", f"grpc://{url}")
        client.close()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["inputs"]["window"]["dtype"] == "DT_FLOAT"
    assert sorted(remote) == sorted(local)
    for name, values in local.items():
        assert remote[name].dtype == values.dtype
        np.testing.assert_allclose(remote[name], values, atol=1e-5)
    assert_close(answer, predicted(run_dir, WINDOW_FLAG), atol=1e-5)


def test_grpc_errors_are_one_line(exported_run, cli_error):
    run_dir = exported_run("lstm")
    with grpc_stand_in(run_dir) as (url, _):
        client = connect(url, "grpc", timeout=10)
        with pytest.raises(NotFound) as error:
            client.predict("sine", SINE_INPUT)
        assert str(error.value) == (
            f"model 'sine' is not served at {url}: "
            "Servable not found for request: Latest(sine) (NOT_FOUND)"
        )
        with pytest.raises(
            NotFound, match=r"version 7 is not served .*Specific\(sine_forecaster, 7\)"
        ):
            client.status("sine_forecaster", version=7)
        with pytest.raises(UserError) as error:
            client.predict("sine_forecaster", {"series": SINE_INPUT["window"]})
        assert str(error.value).startswith(f"the server at {url} answered INVALID_ARGUMENT: input")
        argv = [run_dir, WINDOW_FLAG, "--protocol", "grpc", "--url", url, "--version", "2"]
        cli_error(clients_main, argv, "model 'sine_forecaster' version 2 is not served")
    port = free_port()
    with pytest.raises(UserError) as error:
        connect(f"127.0.0.1:{port}", "grpc").status("sine_forecaster")
    assert str(error.value) == (
        f"cannot connect to 127.0.0.1:{port}: connection refused — is the server running?"
    )


def test_grpc_translation_goes_to_the_string_graph(tiny_runs):
    """Greedy translation by the server's `translate` SavedModel (strings in and out) equals
    onnxruntime's greedy decoding; with --beam the encoder and decoder step are used."""
    run_dir = LUONG.exported(tiny_runs)
    with grpc_stand_in(run_dir) as (url, service):
        answer = served(run_dir, *QUERIES, "--protocol", "grpc", "--url", url)
        assert service.asked == ["translate"]
        served(run_dir, QUERIES[0], "--beam", "2", "--protocol", "grpc", "--url", url)
        assert {"encoder", "decoder_step"} <= set(service.asked[1:])
        assert "translate" not in service.asked[1:]
    expected = predicted(run_dir, *QUERIES)["translations"]
    rows = answer["translations"]  # the string graph gives texts alone: no score
    assert [row["score"] for row in rows] == [None if text else 0.0 for text in QUERIES]
    assert [row | {"score": 0} for row in rows] == [row | {"score": 0} for row in expected]


# --------------------------------------------------- (d) against python -m serving.server


def test_real_server_answers_as_predict(exported_run, tmp_path):
    """python -m serving.server (TensorFlow blocked) answers the REST client and the CLI with
    serving.predict's numbers."""
    run_dir = exported_run("lstm")
    local = load_graph(run_dir / "export")(**SINE_INPUT)
    with serve_without_tensorflow("--run", run_dir, log=tmp_path / "server.log") as server:
        client = RestClient(server.url)
        assert client.status("sine_forecaster") == AVAILABLE
        remote = client.predict("sine_forecaster", SINE_INPUT)
        argv = [run_dir, WINDOW_FLAG, "--url", server.url, "--json"]
        result = run_without_tensorflow("serving.clients", *argv)
        with pytest.raises(NotFound, match="model 'sine_forecaster' version 2 is not served"):
            client.predict("sine_forecaster", SINE_INPUT, version=2)
    for name, values in local.items():
        assert remote[name].dtype == values.dtype
        np.testing.assert_allclose(remote[name], values, rtol=0, atol=1e-6)
    assert result.returncode == 0, result.stderr
    assert_close(json.loads(result.stdout), predicted(run_dir, WINDOW_FLAG), atol=1e-6)


# ------------------------------------------------------------------------ RemoteGraph alone


class FakeClient:
    """A ``ModelClient`` that answers ``outputs`` and keeps what it was sent."""

    url = "http://fake"

    def __init__(self, outputs: dict[str, np.ndarray]):
        self.outputs, self.sent = outputs, []

    def status(self, model: str, version: int | None = None) -> dict:
        return AVAILABLE

    def metadata(self, model: str, version: int | None = None) -> dict:
        return metadata_of(model, {})

    def predict(self, model, inputs, version=None, signature_name=None) -> dict:
        self.sent.append((model, inputs, version))
        return self.outputs

    def close(self) -> None:
        pass


def test_remote_graph_checks_inputs_as_exported_graph_and_outputs_by_manifest(exported_run):
    from serving.clients.remote import RemoteGraph
    from serving.runtime.graph import manifest_entry

    export_dir = exported_run("lstm") / "export"
    answer = {"next_value": np.zeros((1, 1), np.float32), "next_values": np.zeros((1, 10))}
    client = FakeClient(answer)
    assert isinstance(client, ModelClient) and isinstance(RestClient(), ModelClient)
    graph = RemoteGraph(export_dir, manifest_entry(export_dir), client, version=3)
    assert graph(window=np.zeros((1, 4, 1))) is answer
    model, inputs, version = client.sent[0]
    assert (model, version, inputs["window"].dtype) == ("sine_forecaster", 3, np.float32)
    with pytest.raises(UserError, match=r"must have rank 3 \(shape \(\?, \?, 1\)\)"):
        graph(window=np.zeros((1, 4)))
    with pytest.raises(UserError, match="takes inputs window: missing window; unexpected x"):
        graph(x=1)
    client.outputs = {"next_value": answer["next_value"]}
    with pytest.raises(UserError) as error:
        graph(window=np.zeros((1, 4, 1)))
    assert str(error.value) == (
        "model 'sine_forecaster' at http://fake answered outputs next_value, not next_values: "
        "does the server serve this export?"
    )
    assert len(client.sent) == 2  # the bad inputs were not sent
