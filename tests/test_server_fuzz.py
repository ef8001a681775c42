"""Requests that are the client's fault get a 4xx (gRPC: no INTERNAL or UNKNOWN) on every
route of both protocols, and the server keeps serving: ids outside an Embedding's vocabulary
are refused by name, and a fixed list of malformed requests (truncated, wrong types, wrong
shapes, huge numbers, deep nesting, wrong ids and datatypes, binary garbage) gets no 5xx and
no traceback in the log. A fault of the server is a 500 (gRPC INTERNAL), logged once."""

from __future__ import annotations

import http.client
import json
import logging
from types import SimpleNamespace
from typing import ClassVar

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2

from serving.errors import UserError
from serving.runtime.graph import load_graph
from serving.server import open_inference_grpc
from serving.server.metrics import Metrics
from serving.server.models import Registry, RequestError, refusal
from serving.server.sequences import Sequences
from serving.server.tensors import string_array, v2_array
from tests.conftest import serve_without_tensorflow
from tests.test_charlm import CHARLM
from tests.test_server import SINE, WINDOW

UNITS = 16  # CHARLM's --units: the size of lm_step's state
SERVER_FAULTS = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


@pytest.fixture(scope="module")
def charlm(tiny_runs):
    return CHARLM.exported(tiny_runs)


@pytest.fixture(scope="module")
def server(exported_run, charlm, tmp_path_factory):
    log = tmp_path_factory.mktemp("fuzz") / "stderr.log"
    with serve_without_tensorflow(
        "--run", exported_run("lstm"), "--run", charlm, "--quiet", log=log
    ) as served:
        yield served


def send(server, method: str, path: str, body: bytes = b"", headers=None) -> tuple[int, bytes]:
    """``(status, body)`` of one HTTP request."""
    connection = http.client.HTTPConnection(server.http, timeout=30)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, payload


def call(server, method: str, message: bytes) -> tuple[grpc.StatusCode, str]:
    """The status code and details of one raw gRPC call of the inference service."""
    with grpc.insecure_channel(server.grpc) as channel:
        try:
            channel.unary_unary(f"/inference.GRPCInferenceService/{method}")(message, timeout=30)
        except grpc.RpcError as error:
            return error.code(), error.details()
    return grpc.StatusCode.OK, ""


def step_inputs(character) -> dict:
    """lm_step's inputs: ``character`` (rows of one id) and a zero state."""
    rows = len(character)
    return {"character": character, "state_0_h": np.zeros((rows, UNITS)).tolist()}


def grpc_infer(model: str, *tensors: tuple, raw: list[bytes] | None = None) -> bytes:
    """A serialized ModelInferRequest; each tensor is ``(name, datatype, shape, contents)``
    with contents a dict of the typed ``contents`` fields."""
    message = service_pb2.ModelInferRequest(model_name=model)
    for name, datatype, shape, contents in tensors:
        message.inputs.add(name=name, datatype=datatype, shape=shape, contents=contents)
    message.raw_input_contents.extend(raw or [])
    return message.SerializeToString()


def test_ids_outside_the_vocabulary_are_refused_on_every_protocol(server, charlm):
    """An id at or above the Embedding's input_dim was a 500 (onnxruntime's InvalidArgument),
    a negative one an answer (ONNX Gather wraps it): both are a 400 naming the input, the
    value and the range."""
    size = load_graph(charlm / "export", "lm_step").inputs[0]["range"][1]
    for bad in (size, 100_000, -1):
        want = f"input character holds {bad}, outside its range 0 to {size - 1}"
        body = json.dumps({"inputs": step_inputs([[bad]])}).encode()
        status, answer = send(server, "POST", "/v1/models/lm_step:predict", body)
        assert status == 400 and want in json.loads(answer)["error"], answer
        tensors = [
            {"name": "character", "datatype": "INT32", "shape": [1, 1], "data": [bad]},
            {"name": "state_0_h", "datatype": "FP32", "shape": [1, UNITS], "data": [0.0] * UNITS},
        ]
        body = json.dumps({"inputs": tensors}).encode()
        status, answer = send(server, "POST", "/v2/models/lm_step/infer", body)
        assert status == 400 and want in json.loads(answer)["error"], answer
        message = grpc_infer(
            "lm_step",
            ("character", "INT32", [1, 1], {"int_contents": [bad]}),
            ("state_0_h", "FP32", [1, UNITS], {"fp32_contents": [0.0] * UNITS}),
        )
        code, details = call(server, "ModelInfer", message)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and want in details, details
    body = json.dumps({"inputs": step_inputs([[size - 1], [0]])}).encode()
    assert send(server, "POST", "/v1/models/lm_step:predict", body)[0] == 200


def deep(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


VALID_V1 = json.dumps({"instances": WINDOW.tolist()})
VALID_V2 = json.dumps(
    {"inputs": [{"name": "window", "shape": [1, 24, 1], "datatype": "FP32", "data": [0.5] * 24}]}
)
STATE = json.dumps(np.zeros((1, UNITS)).tolist())
HUGE = ("1e400", "-1e400", "1e308", "1" * 5000, str(2**70))  # float32 inf, 5000 digits, 71 bits
V1_BODIES = [
    *(VALID_V1[:n] for n in (1, 10, len(VALID_V1) // 2, len(VALID_V1) - 1)),  # truncated
    *("", "null", "[]", '"x"', "1", "1e400"),  # no object
    *('{"instances": {}}', '{"instances": "x"}', '{"instances": [null]}', '{"inputs": null}'),
    *('{"instances": [true]}', '{"instances": [{"window": 1}, 1]}'),
    *('{"instances": [{"window": [[1.0]]}, {"other": 1}]}', '{"inputs": {"window": {"a": 1}}}'),
    *(f'{{"inputs": {{"window": [[[{number}]]]}}}}' for number in (*HUGE, '"1"')),
    *('{"inputs": {"window": [[[]]]}}', '{"inputs": {"window": [[[1.0], [1.0, 2.0]]]}}'),
    *('{"inputs": {"window": ' + deep(levels) + "}}" for levels in (100, 5000)),  # numpy, json
    '{"instances": ' + deep(5000) + "}",
    deep(100_000),
    '{"signature_name": ' + deep(980, '"x"') + ', "instances": [[[1.0]]]}',
    '{"signature_name": [1], "instances": [[[1.0]]]}',
]
LM_STEP_V1 = [
    f'{{"inputs": {{"character": [[{value}]], "state_0_h": {STATE}}}}}'
    for value in (2**31, -(2**31) - 1, 2**40, 2**63, 2**64 - 1, 2**70, 1.5, "true", '"a"')
] + [
    f'{{"inputs": {{"character": [[1], [2]], "state_0_h": {STATE}}}}}',  # two batch sizes
    f'{{"instances": [{{"character": [1], "state_0_h": {json.dumps([0.0] * (UNITS + 1))}}}]}}',
]


def v2(*tensors: dict, **fields) -> str:
    return json.dumps({"inputs": list(tensors), **fields})


def window(**changes) -> dict:
    """A valid v2 window tensor with ``changes``."""
    return {"name": "window", "shape": [1, 2, 1], "datatype": "FP32", "data": [0.5, 0.5]} | changes


def character(value, datatype: str = "INT32") -> dict:
    return {"name": "character", "shape": [1, 1], "datatype": datatype, "data": [value]}


STATE_V2 = {"name": "state_0_h", "shape": [1, UNITS], "datatype": "FP32", "data": [0.0] * UNITS}
V2_BODIES = [
    *(VALID_V2[:n] for n in (1, 20, len(VALID_V2) - 1)),  # truncated
    *("", "[]", '{"inputs": "x"}', '{"inputs": [1]}', '{"inputs": [{"name": 1}]}'),
    *(v2(window(shape=shape)) for shape in ("x", [True, 2, 1], [-1, 2, 1], [2**70, 1, 1])),
    *(v2(window(shape=shape, data=[])) for shape in ([2**40, 2**40, 1], [2**62, 0, 1])),
    *(v2(window(datatype=datatype)) for datatype in ([1], {"a": 1}, "FP128", "BYTES", "FP64")),
    v2(window(datatype="INT8", data=[300, 1])),
    *(v2(window(data=data)) for data in ("x", None, [[1.0], [1.0, 2.0]], [1e308, 1.0])),
    v2(window(data=[True, False])),
    v2(window(parameters=[])),
    *(v2(window(parameters={"binary_data_size": size})) for size in ("x", -1, 2**70)),
    *(v2(window(), outputs=outputs) for outputs in ("x", [1], [{"name": [1]}])),
    v2(window(), outputs=[{"name": "next_value", "parameters": 1}]),
    *(v2(window(), **fields) for fields in ({"parameters": "x"}, {"id": [1]}, {"id": {}})),
    v2(window(), window()),
    '{"id": ' + deep(980, '"x"') + ', "inputs": []}',
    '{"inputs": [' + json.dumps(window())[:-1] + ', "datatype": ' + deep(980, '"x"') + "}]}",
    '{"inputs": ' + deep(5000) + "}",
]
IDS = [(2**31, "INT32"), (2**40, "INT32"), (2**63, "INT64"), (2**70, "INT32"), (-1, "UINT8")]
IDS += [(300, "INT8"), (1, "INT64"), (1.5, "INT32")]
LM_STEP_V2 = [
    *(v2(character(value, datatype), STATE_V2) for value, datatype in IDS),
    v2(character(1) | {"shape": [2, 1], "data": [1, 2]}, STATE_V2),  # two batch sizes
]
GARBAGE = [bytes(range(256)), b"\xff\xfe\x00{", np.random.default_rng(21).bytes(512)]
HTTP_CASES = (
    [("POST", f"/v1/models/{SINE}:predict", body) for body in V1_BODIES + GARBAGE]
    + [("POST", "/v1/models/lm_step:predict", body) for body in LM_STEP_V1]
    + [("POST", f"/v2/models/{SINE}/infer", body) for body in V2_BODIES + GARBAGE]
    + [("POST", "/v2/models/lm_step/infer", body) for body in LM_STEP_V2]
    + [
        ("GET", path, "")
        for path in (
            f"/v1/models/{SINE}/versions/abc",
            f"/v1/models/{SINE}/versions/99999999999999999999999/metadata",
            f"/v1/models/{SINE}/labels/stable",
            "/v1/models/%ff%fe/metadata",
            "/v1/models/" + "x" * 4000,
            f"/v2/models/{SINE}/versions/x/ready",
            "/v2/models/%00/ready",
            f"/v2/models/{SINE}/versions/{'9' * 30}",
        )
    ]
    + [("POST", f"/v1/models/{SINE}/metadata", VALID_V1), ("PUT", f"/v2/models/{SINE}/ready", "")]
)
# "²" in UTF-8: a digit to str.isdigit that int() refuses
BINARY_HEADERS = ["x", "-1", "²".encode(), "9" * 30, "0", str(len(VALID_V2) + 1)]


def test_malformed_http_requests_get_no_5xx(server):
    for method, path, body in HTTP_CASES:
        payload = body if isinstance(body, bytes) else body.encode()
        status, answer = send(server, method, path, payload)
        assert 400 <= status < 500, (path, body[:200], status, answer[:300])
        assert set(json.loads(answer)) == {"error"}, answer[:300]
    for length in BINARY_HEADERS:
        headers = {"Inference-Header-Content-Length": length}
        status, answer = send(server, "POST", f"/v2/models/{SINE}/infer", VALID_V2, headers)
        assert 400 <= status < 500, (length, status, answer[:300])
    assert send(server, "POST", f"/v1/models/{SINE}:predict", VALID_V1)[0] == 200
    assert send(server, "POST", f"/v2/models/{SINE}/infer", VALID_V2)[0] == 200
    assert "Traceback" not in server.log()


GRPC_FLOATS = {"fp32_contents": [0.5, 0.5]}
GRPC_INFER = [
    grpc_infer(SINE, ("window", "FP32", [1, 2, 1], GRPC_FLOATS)) + b"\xff",  # truncated field
    grpc_infer(SINE, ("window", "INT8", [1, 2, 1], {"int_contents": [300, 1]})),
    grpc_infer(SINE, ("window", "UINT8", [1, 2, 1], {"uint_contents": [2**31, 1]})),
    grpc_infer(SINE, ("window", "BYTES", [1, 2, 1], {"bytes_contents": [b"a", b"b"]})),
    grpc_infer(SINE, ("window", "FP16", [1, 2, 1], {})),
    grpc_infer(SINE, ("window", "FP32", [2**40, 2**40, 1], {})),
    grpc_infer(SINE, ("window", "FP32", [2**62, 0, 1], {})),
    grpc_infer(SINE, ("window", "FP32", [-1, 2, 1], GRPC_FLOATS)),
    grpc_infer(SINE, ("window", "FP32", [1, 2], GRPC_FLOATS)),
    grpc_infer(SINE, ("window", "FP32", [1, 2, 1], {"fp32_contents": [1e38, float("inf")]})),
    grpc_infer(SINE, ("window", "FP32", [1, 2, 1], {}), raw=[b"\x00" * 7]),
    grpc_infer(SINE, ("window", "FP32", [1, 2, 1], {}), raw=[b"\x00" * 8, b"\x00"]),
    grpc_infer(SINE, ("window", "FP32", [1, 2, 1], GRPC_FLOATS), ("window", "FP32", [1], {})),
    grpc_infer(SINE),
    grpc_infer("", ("window", "FP32", [1, 2, 1], GRPC_FLOATS)),
    grpc_infer("lm_step", ("character", "INT64", [1, 1], {"int64_contents": [2**63 - 1]})),
    grpc_infer(
        "lm_step",
        ("character", "INT32", [2, 1], {"int_contents": [1, 2]}),
        ("state_0_h", "FP32", [1, UNITS], {"fp32_contents": [0.0] * UNITS}),
    ),
]
NAMES = [service_pb2.ModelMetadataRequest(name=n, version="x" * 99) for n in ("nope", SINE)]
GRPC_CASES = (
    [("ModelInfer", message) for message in GRPC_INFER + GARBAGE]
    + [
        (method, message)
        for method in ("ModelMetadata", "ModelReady", "ServerMetadata", "ServerLive")
        for message in GARBAGE + [name.SerializeToString() for name in NAMES]
    ]
    + [("NoSuchMethod", b"")]
)


def test_malformed_grpc_requests_get_no_server_fault(server):
    for method, message in GRPC_CASES:
        code, details = call(server, method, message)
        assert code not in SERVER_FAULTS, (method, message[:100], code, details)
    valid = grpc_infer(SINE, ("window", "FP32", [1, 2, 1], GRPC_FLOATS))
    assert call(server, "ModelInfer", valid)[0] == grpc.StatusCode.OK
    assert "Traceback" not in server.log()


def reads_of_rank(rank: int) -> list:
    """Calls that read an input of ``rank`` dimensions: a JSON, binary, nested-strings and
    gRPC (typed contents, raw) tensor."""
    tensor = {"name": "x", "shape": [1] * rank, "datatype": "FP32", "data": [0.5]}
    message = service_pb2.ModelInferRequest.InferInputTensor(
        name="x", datatype="FP32", shape=[1] * rank
    )
    message.contents.fp32_contents.append(0.5)
    return [
        lambda: v2_array(tensor)[1],
        lambda: v2_array(tensor, bytes(4))[1],
        lambda: string_array("x", json.loads(deep(rank, '"a"'))),
        lambda: open_inference_grpc._array(message, None),
        lambda: open_inference_grpc._array(message, bytes(4)),
    ]


def test_more_dimensions_than_numpy_holds_are_a_400():
    """65 dimensions (numpy holds 64) were a 500 (numpy's ValueError); 64 are taken."""
    for read in reads_of_rank(64):
        assert read().ndim == 64
    for read in reads_of_rank(65):
        with pytest.raises(RequestError, match="input x has 65 dimensions: at most 64"):
            read()


class Context:
    """What a gRPC handler uses of its ``ServicerContext``."""

    def abort(self, code: grpc.StatusCode, details: str):
        self.code, self.details = code, details
        raise grpc.RpcError(details)


class Broken:
    """A registry whose lookup fails as a bug of ours would."""

    tasks: ClassVar[dict] = {}  # no task models: every name is looked up as a graph

    def find(self, name: str, version: str | None = None):
        raise KeyError("a bug")


def test_a_fault_of_the_server_is_a_500_or_internal_logged_once(caplog):
    assert refusal(UserError("input x is wrong")).status == 400
    assert refusal(RecursionError()).status == 400
    with caplog.at_level(logging.ERROR, "serving.server"):
        try:
            Broken().find(SINE)
        except KeyError as error:
            answer = refusal(error)
    assert (answer.status, str(answer)) == (500, "internal error: KeyError")
    assert len(caplog.records) == 1 and "Traceback" in caplog.records[0].getMessage()
    caplog.clear()
    methods = open_inference_grpc.handler(Broken(), None, Metrics(Registry({})), Sequences())
    call_details = SimpleNamespace(method=f"/{open_inference_grpc.SERVICE}/ModelReady")
    ready = methods.service(call_details)
    context = Context()
    with caplog.at_level(logging.ERROR, "serving.server"), pytest.raises(grpc.RpcError):
        ready.unary_unary(service_pb2.ModelReadyRequest(name=SINE).SerializeToString(), context)
    assert (context.code, context.details) == (grpc.StatusCode.INTERNAL, "internal error: KeyError")
    assert len(caplog.records) == 1
