"""python -m serving.server with TensorFlow blocked: TF Serving's REST API and the Open
Inference Protocol (tritonclient's HTTP and gRPC clients, which nobody here wrote) give what
onnxruntime gives in-process; bad requests get a 4xx and the server keeps serving; SIGTERM
lets a request in flight finish."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from serving.runtime.graph import load_graph
from tests.conftest import (
    assert_user_error,
    read_until_closed,
    run_without_tensorflow,
    serve_without_tensorflow,
)
from tests.test_charlm import CHARLM
from tests.test_serving_runtime import OTHER_GRAPHS, write_graph

SINE = "sine_forecaster"
WINDOW = np.sin(np.linspace(0, 3, 24, dtype=np.float32)).reshape(1, 24, 1)
BATCH = np.stack([np.roll(WINDOW[0], shift) for shift in range(5)])  # 5 windows


@pytest.fixture(scope="module")
def runs(exported_run, tiny_runs):
    return {"sine": exported_run("lstm"), "charlm": CHARLM.exported(tiny_runs)}


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "stderr.log"
    with serve_without_tensorflow("--run", runs["sine"], "--run", runs["charlm"], log=log) as s:
        yield s


def local(run, graph: str, **inputs) -> dict[str, np.ndarray]:
    """onnxruntime in this process, on the same export."""
    return load_graph(run / "export", graph)(**inputs)


def request(server, method: str, path: str, body: bytes | str | None = None, headers=None):
    """``(status, decoded JSON body)`` of one HTTP request."""
    connection = http.client.HTTPConnection(server.http, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, json.loads(payload)


def post(server, path: str, document) -> tuple[int, dict]:
    return request(server, "POST", path, json.dumps(document))


def close(actual, expected) -> None:
    np.testing.assert_allclose(np.asarray(actual, np.float32), expected, rtol=0, atol=1e-6)


def test_tf_serving_rest_status_metadata_and_predict_in_both_formats(server, runs):
    expected = local(runs["sine"], SINE, window=BATCH)
    assert request(server, "GET", f"/v1/models/{SINE}") == (
        200,
        {
            "model_version_status": [
                {
                    "version": "1",
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        },
    )
    assert request(server, "GET", f"/v1/models/{SINE}/versions/1")[0] == 200
    status, metadata = request(server, "GET", f"/v1/models/{SINE}/metadata")
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert status == 200 and set(signature["outputs"]) == set(expected)
    assert signature["inputs"]["window"]["dtype"] == "DT_FLOAT"
    assert [d["size"] for d in signature["inputs"]["window"]["tensor_shape"]["dim"]] == [
        "-1",
        "-1",
        "1",
    ]

    status, rows = post(server, f"/v1/models/{SINE}:predict", {"instances": BATCH.tolist()})
    assert status == 200 and len(rows["predictions"]) == len(BATCH)
    for name, value in expected.items():
        close([row[name] for row in rows["predictions"]], value)
    status, columns = post(
        server, f"/v1/models/{SINE}/versions/1:predict", {"inputs": {"window": BATCH.tolist()}}
    )
    assert status == 200 and set(columns["outputs"]) == set(expected)
    for name, value in expected.items():
        close(columns["outputs"][name], value)
    # One input may go unnamed, as TF Serving allows.
    assert post(server, f"/v1/models/{SINE}:predict", {"inputs": BATCH.tolist()}) == (200, columns)


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_http(server, runs, binary):
    client = triton_http.InferenceServerClient(server.http)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(SINE)
    metadata = client.get_model_metadata(SINE)
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "window", "datatype": "FP32", "shape": [-1, -1, 1]}]
    window = triton_http.InferInput("window", list(BATCH.shape), "FP32")
    window.set_data_from_numpy(BATCH, binary_data=binary)
    outputs = [triton_http.InferRequestedOutput("next_values", binary_data=binary)]
    result = client.infer(SINE, [window], outputs=outputs, request_id="7")
    assert result.get_response()["id"] == "7"
    close(result.as_numpy("next_values"), local(runs["sine"], SINE, window=BATCH)["next_values"])
    assert result.as_numpy("next_value") is None  # not asked for


def test_tritonclient_grpc(server, runs):
    client = triton_grpc.InferenceServerClient(server.grpc)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(SINE)
    metadata = client.get_model_metadata(SINE, as_json=True)
    assert metadata["inputs"] == [
        {"name": "window", "datatype": "FP32", "shape": ["-1", "-1", "1"]}
    ]
    window = triton_grpc.InferInput("window", list(BATCH.shape), "FP32")
    window.set_data_from_numpy(BATCH)
    result = client.infer(SINE, [window])
    for name, value in local(runs["sine"], SINE, window=BATCH).items():
        close(result.as_numpy(name), value)


def test_a_stateful_step_graph_is_a_plain_function(server, runs):
    """charlm's lm_step: the state goes in and comes out with each request."""
    graph = load_graph(runs["charlm"] / "export", "lm_step")
    states = {
        spec["name"]: np.zeros([1, *spec["shape"][1:]], np.float32) for spec in graph.inputs[1:]
    }
    client = triton_grpc.InferenceServerClient(server.grpc)
    served_states = dict(states)
    for character in (5, 9, 3):
        ids = np.array([[character]], np.int32)
        expected = graph(character=ids, **states)
        inputs = []
        for name, value in {"character": ids, **served_states}.items():
            tensor = triton_grpc.InferInput(
                name, list(value.shape), "INT32" if name == "character" else "FP32"
            )
            tensor.set_data_from_numpy(value)
            inputs.append(tensor)
        result = client.infer("lm_step", inputs)
        for name, value in expected.items():
            close(result.as_numpy(name), value)
        states = {name: expected[f"next_{name}"] for name in states}
        served_states = {name: result.as_numpy(f"next_{name}") for name in states}


BAD_V1 = [
    (
        "malformed JSON",
        "/v1/models/sine_forecaster:predict",
        "{'instances': [",
        400,
        "malformed JSON",
    ),
    ("no instances", "/v1/models/sine_forecaster:predict", {"rows": []}, 400, "exactly one of"),
    (
        "unknown input",
        "/v1/models/sine_forecaster:predict",
        {"inputs": {"x": [[[1.0]]]}},
        400,
        "unexpected x",
    ),
    ("wrong rank", "/v1/models/sine_forecaster:predict", {"instances": [1.0, 2.0]}, 400, "rank 3"),
    (
        "wrong length",
        "/v1/models/sine_forecaster:predict",
        {"instances": [[[1.0, 2.0]]]},
        400,
        "size 1 on axis 2",
    ),
    ("strings", "/v1/models/sine_forecaster:predict", {"instances": [[["a"]]]}, 400, "numbers"),
    (
        "ragged",
        "/v1/models/sine_forecaster:predict",
        {"instances": [[[1.0]], [[1.0], [2.0]]]},
        400,
        "ragged",
    ),
    ("NaN", "/v1/models/sine_forecaster:predict", '{"instances": [[[NaN]]]}', 400, "NaN"),
    (
        "fractional ids",
        "/v1/models/lm_step:predict",
        {"inputs": {"character": [[1.5]], "state_0_h": [[0.0]]}},
        400,
        "int32",
    ),
    (
        "signature",
        "/v1/models/sine_forecaster:predict",
        {"signature_name": "x", "instances": [[[1.0]]]},
        400,
        "signature",
    ),
    ("unknown model", "/v1/models/nope:predict", {"instances": [[[1.0]]]}, 404, "nope"),
    (
        "unknown version",
        "/v1/models/sine_forecaster/versions/2:predict",
        {"instances": [[[1.0]]]},
        404,
        "2",
    ),
    ("no such endpoint", "/v1/models/sine_forecaster:explain", {}, 404, "no such endpoint"),
]
BAD_V2 = [
    ("malformed JSON", "/v2/models/sine_forecaster/infer", "{", 400, "malformed JSON"),
    ("missing input", "/v2/models/sine_forecaster/infer", {"inputs": []}, 400, "missing window"),
    (
        "wrong datatype",
        "/v2/models/sine_forecaster/infer",
        {"inputs": [{"name": "window", "shape": [1, 1, 1], "datatype": "INT32", "data": [1]}]},
        400,
        "FP32",
    ),
    (
        "short data",
        "/v2/models/sine_forecaster/infer",
        {"inputs": [{"name": "window", "shape": [1, 2, 1], "datatype": "FP32", "data": [1.0]}]},
        400,
        "fill shape",
    ),
    (
        "empty",
        "/v2/models/sine_forecaster/infer",
        {"inputs": [{"name": "window", "shape": [1, 0, 1], "datatype": "FP32", "data": []}]},
        400,
        "empty",
    ),
    (
        "unknown output",
        "/v2/models/sine_forecaster/infer",
        {
            "inputs": [{"name": "window", "shape": [1, 1, 1], "datatype": "FP32", "data": [1.0]}],
            "outputs": [{"name": "x"}],
        },
        400,
        "unknown output",
    ),
    ("unknown model", "/v2/models/nope/infer", {"inputs": []}, 404, "nope"),
    ("unknown version", "/v2/models/sine_forecaster/versions/3", None, 404, "3"),
]


@pytest.mark.parametrize(
    ("problem", "path", "body", "status", "fragment"),
    BAD_V1 + BAD_V2,
    ids=[b[0] for b in BAD_V1 + BAD_V2],
)
def test_bad_http_requests_get_a_4xx_json_error_and_the_server_keeps_serving(
    server, problem, path, body, status, fragment
):
    payload = body if isinstance(body, str) or body is None else json.dumps(body)
    answer = request(server, "GET" if body is None else "POST", path, payload)
    assert answer[0] == status and fragment in answer[1]["error"], answer
    assert set(answer[1]) == {"error"}
    assert post(server, f"/v1/models/{SINE}:predict", {"instances": WINDOW.tolist()})[0] == 200


def test_binary_nan_and_a_short_binary_body_are_refused(server):
    window = np.array([[[0.5], [np.nan]]], np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "window",
                    "shape": [1, 2, 1],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    ).encode()
    path = f"/v2/models/{SINE}/infer"
    length = {"Inference-Header-Content-Length": str(len(header))}
    status, answer = request(server, "POST", path, header + window.tobytes(), length)
    assert status == 400 and "NaN" in answer["error"]
    status, answer = request(server, "POST", path, header + window.tobytes()[:6], length)
    assert status == 400 and "past the end" in answer["error"]


def test_grpc_bad_requests_and_malformed_protobuf(server):
    client = triton_grpc.InferenceServerClient(server.grpc)
    window = triton_grpc.InferInput("window", [1, 2, 1], "FP32")
    window.set_data_from_numpy(np.array([[[0.5], [np.inf]]], np.float32))
    with pytest.raises(InferenceServerException, match="NaN or infinity") as error:
        client.infer(SINE, [window])
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"
    with pytest.raises(InferenceServerException, match="nope") as error:
        client.infer("nope", [window])
    assert error.value.status() == "StatusCode.NOT_FOUND"
    wrong = triton_grpc.InferInput("windows", [1, 1, 1], "FP32")
    wrong.set_data_from_numpy(np.ones((1, 1, 1), np.float32))
    with pytest.raises(InferenceServerException, match="unexpected windows"):
        client.infer(SINE, [wrong])
    with pytest.raises(InferenceServerException, match=r"Specific\(sine_forecaster, 2\)") as error:
        client.infer(SINE, [window], model_version="2")
    assert error.value.status() == "StatusCode.NOT_FOUND"
    for values, datatype, fragment in [
        (np.ones((1, 2), np.float32), "FP32", "rank 3"),
        (np.ones((1, 2, 1), np.int32), "INT32", "window is FP32, got INT32"),
        (np.ones((1, 2, 3), np.float32), "FP32", "size 1 on axis 2"),
    ]:
        tensor = triton_grpc.InferInput("window", list(values.shape), datatype)
        tensor.set_data_from_numpy(values)
        with pytest.raises(InferenceServerException, match=fragment) as error:
            client.infer(SINE, [tensor])
        assert error.value.status() == "StatusCode.INVALID_ARGUMENT"
    with grpc.insecure_channel(server.grpc) as channel:
        raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as failure:
            raw(b"\x0a\xff\xff\xff\xff")  # a length that runs past the message
        assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed ModelInferRequest" in failure.value.details()
    assert client.is_model_ready(SINE)


def test_oversized_bodies_are_refused_on_both_protocols(runs, tmp_path):
    with serve_without_tensorflow(
        "--run", runs["sine"], "--max-request-mb", "1", log=tmp_path / "log"
    ) as small:
        big = np.zeros((1, 300_000, 1), np.float32)  # 1.2 MB as raw bytes, more as JSON
        status, answer = post(small, f"/v1/models/{SINE}:predict", {"instances": big.tolist()})
        assert status == 413 and "limit of 1048576 bytes" in answer["error"]
        request_message = service_pb2.ModelInferRequest(model_name=SINE)
        request_message.inputs.add(name="window", datatype="FP32", shape=big.shape)
        request_message.raw_input_contents.append(big.tobytes())
        with grpc.insecure_channel(small.grpc) as channel:
            raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            with pytest.raises(grpc.RpcError) as failure:
                raw(request_message.SerializeToString())
        assert failure.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert post(small, f"/v1/models/{SINE}:predict", {"instances": WINDOW.tolist()})[0] == 200


def test_concurrent_requests_on_both_protocols_all_get_their_own_answer(server, runs):
    windows = [np.roll(WINDOW, shift, axis=1) for shift in range(48)]
    expected = [local(runs["sine"], SINE, window=w)["next_values"] for w in windows]

    def ask(index: int) -> np.ndarray:
        if index % 2:
            _, answer = post(
                server, f"/v1/models/{SINE}:predict", {"inputs": windows[index].tolist()}
            )
            return np.asarray(answer["outputs"]["next_values"], np.float32)
        client = triton_grpc.InferenceServerClient(server.grpc)
        tensor = triton_grpc.InferInput("window", list(WINDOW.shape), "FP32")
        tensor.set_data_from_numpy(windows[index])
        return client.infer(SINE, [tensor]).as_numpy("next_values")

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(len(windows))))
    for answer, want in zip(answers, expected, strict=True):
        close(answer, want)


def test_one_log_line_per_request_and_none_with_quiet(runs, tmp_path):
    with serve_without_tensorflow("--run", runs["sine"], log=tmp_path / "log") as logged:
        before = logged.log().count("\n")
        for _ in range(3):
            request(logged, "GET", f"/v1/models/{SINE}")
        assert post(logged, "/v1/models/nope:predict", {})[0] == 404
        triton_grpc.InferenceServerClient(logged.grpc).is_model_ready(SINE)
        lines = logged.log().splitlines()[before:]
    assert len(lines) == 5, lines
    assert sum(f"GET /v1/models/{SINE} 200" in line for line in lines) == 3
    assert sum("POST /v1/models/nope:predict 404" in line for line in lines) == 1
    assert sum("grpc ModelReady OK" in line for line in lines) == 1
    with serve_without_tensorflow(
        "--run", runs["sine"], "--quiet", log=tmp_path / "quiet"
    ) as quiet:
        request(quiet, "GET", f"/v1/models/{SINE}")
        status, _, stderr = quiet.stop()
    assert status == 0 and f"/v1/models/{SINE}" not in stderr


def test_clients_that_stall_or_vanish_mid_request_do_not_starve_the_others(runs, tmp_path):
    """With one worker thread, eight clients that send half a request and stall, and eight that
    send half and vanish, hold no worker: a whole request from another client is answered."""
    arguments = ("--run", runs["sine"], "--workers", "1")
    with serve_without_tensorflow(*arguments, log=tmp_path / "log") as served:
        body = json.dumps({"instances": WINDOW.tolist()}).encode()
        head = (
            f"POST /v1/models/{SINE}:predict HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        host, port = served.http.split(":")
        stalled = [socket.create_connection((host, int(port)), timeout=30) for _ in range(16)]
        for index, connection in enumerate(stalled):
            connection.sendall(head + body[:10])
            if index % 2:
                connection.close()  # vanished mid-request
        status, answer = post(served, f"/v1/models/{SINE}:predict", {"instances": WINDOW.tolist()})
        assert status == 200, answer
        expected = local(runs["sine"], SINE, window=WINDOW)["next_value"]
        close([row["next_value"] for row in answer["predictions"]], expected)
        for connection in stalled[::2]:
            connection.close()


def test_sigterm_answers_the_request_in_flight_then_exits(runs, tmp_path):
    with serve_without_tensorflow("--run", runs["sine"], log=tmp_path / "log") as served:
        body = json.dumps({"instances": WINDOW.tolist()}).encode()
        host, port = served.http.split(":")
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            head = (
                f"POST /v1/models/{SINE}:predict HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            connection.sendall(head.encode() + body[:10])  # the request is in flight
            # A whole request on a later connection: once it is answered, the server has
            # accepted and read the first one (its event loop takes ready sockets in order).
            assert request(served, "GET", f"/v1/models/{SINE}")[0] == 200
            served.process.terminate()
            while "stopping on SIGTERM" not in served.log():
                assert served.process.poll() is None
            connection.sendall(body[10:])
            answer = read_until_closed(connection)
        status, stdout, _ = served.exited()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert "predictions" in answer.decode()
    assert status == 0 and "stopped on SIGTERM" in stdout


def test_cli_refusals(runs, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(runs["sine"], copy)
    refusals = [
        (["--run", tmp_path / "missing"], "no such folder"),
        (["--run", tmp_path], "export/manifest.json is missing"),
        (["--run", runs["sine"], "--run", copy], "graph sine_forecaster is in both"),
        (["--run", runs["sine"], "--port", "70000"], "port number"),
        (["--run", runs["sine"], "--workers", "0"], "positive integer"),
        ([], "--run"),
    ]
    for argv, fragment in refusals:
        result = run_without_tensorflow("serving.server", *argv)
        assert_user_error(result.returncode, result.stderr, fragment)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http_taken = run_without_tensorflow("serving.server", "--run", runs["sine"], "--port", port)
        grpc_taken = run_without_tensorflow(
            "serving.server", "--run", runs["sine"], "--port", 0, "--grpc-port", port
        )
    assert_user_error(http_taken.returncode, http_taken.stderr, "cannot listen on 127.0.0.1")
    assert_user_error(grpc_taken.returncode, grpc_taken.stderr, f"gRPC port 127.0.0.1:{port}")


def test_another_graphs_onnx_file_is_refused_at_load(exported_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(exported_run("lstm") / "export", run_dir / "export")
    inputs, outputs, fragment = OTHER_GRAPHS["another graph"]
    write_graph(run_dir / "export" / "onnx" / "sine_forecaster.onnx", inputs, outputs)
    result = run_without_tensorflow("serving.server", "--run", run_dir, "--port", 0)
    assert_user_error(result.returncode, result.stderr, "sine_forecaster.onnx is not", fragment)
