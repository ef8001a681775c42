"""Sequences whose recurrent state the server keeps (serving/server/sequences.py), as Triton's
sequence batcher with implicit state keeps them: charlm's ``lm_step`` fed one character at a
time through tritonclient (HTTP and gRPC, TensorFlow blocked in the server) gives the logits
of the whole text through ``char_lm``; starts, ends, refusals, the cap and the idle timeout;
two requests of one sequence at once; and the Triton config the export writes for
``lm_step``, checked against Triton's ModelConfig proto and its rules."""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace

import grpc
import numpy as np
import onnxruntime
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from google.protobuf import text_format
from tritonclient.grpc import service_pb2
from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig
from tritonclient.utils import InferenceServerException

from serving.errors import UserError
from serving.runtime.graph import load_graph, read_manifest
from serving.runtime.vocab import Vocabulary
from serving.server import open_inference, open_inference_grpc, sequences
from serving.server.__main__ import main as server_main
from serving.server.models import Registry, RequestError
from serving.server.sequences import Control, Sequences
from tests.conftest import serve_without_tensorflow
from tests.test_charlm import CHARLM
from tests.test_server import post

TEXTS = ("def f(x):\n    return x", "f12(x) + 3  # 学习")  # the training text's characters
# lm_step and char_lm run the same cell; measured here their logits agree exactly (0.0).
TOLERANCE = 1e-5
PROTOCOLS = {"http": triton_http, "grpc": triton_grpc}


@pytest.fixture(scope="module")
def run(tiny_runs):
    return CHARLM.exported(tiny_runs)


@pytest.fixture(scope="module")
def server(run, tmp_path_factory):
    """The charlm run served with at most two open sequences; each test closes its own."""
    log = tmp_path_factory.mktemp("sequences") / "stderr.log"
    with serve_without_tensorflow("--run", run, "--max-sequences", "2", log=log) as s:
        yield s


def character_ids(run, text: str) -> np.ndarray:
    ids, unknown = Vocabulary.load(run / "export" / "vocab" / "vocab.json").encode(text)
    assert not unknown
    return np.array(ids, np.int32)


def step(client, protocol: str, character: int, sequence_id, **flags):
    """One ``lm_step`` request of a sequence, sending only ``character``."""
    tensor = PROTOCOLS[protocol].InferInput("character", [1, 1], "INT32")
    tensor.set_data_from_numpy(np.array([[character]], np.int32))
    return client.infer("lm_step", [tensor], sequence_id=sequence_id, **flags)


def client_of(server, protocol: str):
    return PROTOCOLS[protocol].InferenceServerClient(getattr(server, protocol))


@pytest.mark.parametrize(
    ("protocol", "sequence_ids"), [("http", (7, 2**64 - 1)), ("grpc", ("first", "second"))]
)
def test_a_text_fed_character_by_character_gives_the_whole_texts_logits(
    server, run, protocol, sequence_ids
):
    """Two sequences fed in turns, one character per request, each get the logits that
    char_lm gives their whole text; no state travels, and an ended sequence is closed."""
    char_lm = load_graph(run / "export", "char_lm")
    texts = [character_ids(run, text) for text in TEXTS]
    expected = [char_lm(characters=ids[None])["logits"][0] for ids in texts]
    client = client_of(server, protocol)
    got: list[list[np.ndarray]] = [[], []]
    for position in range(max(map(len, texts))):
        for index, (ids, sequence_id) in enumerate(zip(texts, sequence_ids, strict=True)):
            if position < len(ids):
                result = step(
                    client,
                    protocol,
                    ids[position],
                    sequence_id,
                    sequence_start=position == 0,
                    sequence_end=position == len(ids) - 1,
                )
                assert result.as_numpy("next_state_0_h") is None  # the server keeps it
                got[index].append(result.as_numpy("logits")[0])
    for steps, whole in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.array(steps), whole, rtol=0, atol=TOLERANCE)
    with pytest.raises(InferenceServerException, match=f"sequence {sequence_ids[0]!r} of lm_step"):
        step(client, protocol, texts[0][0], sequence_ids[0])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_server_metadata_names_the_sequence_extension(server, protocol):
    """Triton's clients see stateful models served by the extensions field (each extension's
    page names it), over both protocols."""
    metadata = client_of(server, protocol).get_server_metadata()
    extensions = metadata["extensions"] if protocol == "http" else list(metadata.extensions)
    assert {"sequence", "sequence(string_id)", "parameters", "binary_tensor_data"} <= set(
        extensions
    )


def test_a_start_starts_an_open_sequence_over(server, run):
    client = client_of(server, "http")
    first, second = character_ids(run, "de")
    fresh = step(client, "http", first, "again", sequence_start=True).as_numpy("logits")
    moved = step(client, "http", second, "again").as_numpy("logits")
    restarted = step(client, "http", first, "again", sequence_start=True, sequence_end=True)
    np.testing.assert_array_equal(restarted.as_numpy("logits"), fresh)
    assert not np.array_equal(moved, fresh)


def infer_body(**parameters) -> dict:
    character = {"name": "character", "shape": [1, 1], "datatype": "INT32", "data": [5]}
    return {"inputs": [character], "parameters": parameters}


HTTP_REFUSALS = [
    ({"sequence_id": "never"}, "sequence 'never' of lm_step is not open: start it"),
    ({"sequence_id": 12}, "sequence 12 of lm_step is not open"),
    ({"sequence_id": -1, "sequence_start": True}, "a string or an unsigned integer, got -1"),
    ({"sequence_id": 1.5}, "a string or an unsigned integer, got 1.5"),
    ({"sequence_id": True}, "a string or an unsigned integer, got True"),
    ({"sequence_id": [1]}, "a string or an unsigned integer, got [1]"),
    ({"sequence_id": 2**64}, "past the largest, 2**64 - 1"),
    ({"sequence_id": 3, "sequence_start": "yes"}, "sequence_start must be true or false"),
    ({"sequence_start": True}, "sequence_start and sequence_end need a sequence_id"),
    ({"sequence_id": 0, "sequence_end": True}, "need a sequence_id"),
]


@pytest.mark.parametrize(("parameters", "fragment"), HTTP_REFUSALS)
def test_bad_sequence_parameters_are_a_400_naming_the_problem(server, parameters, fragment):
    status, answer = post(server, "/v2/models/lm_step/infer", infer_body(**parameters))
    assert (status, fragment in answer["error"]) == (400, True), answer


def test_refusals_of_graphs_and_states(server, run):
    ids = character_ids(run, "de")
    status, answer = post(
        server,
        "/v2/models/char_lm/infer",
        {
            "inputs": [
                {
                    "name": "characters",
                    "shape": [1, 2],
                    "datatype": "INT32",
                    "data": [*map(int, ids)],
                }
            ],
            "parameters": {"sequence_id": 4, "sequence_start": True},
        },
    )
    assert status == 400 and "char_lm keeps no state" in answer["error"]
    client = client_of(server, "grpc")
    step(client, "grpc", ids[0], 4, sequence_start=True)
    character = triton_grpc.InferInput("character", [1, 1], "INT32")
    character.set_data_from_numpy(ids[None, :1])
    state = triton_grpc.InferInput("state_0_h", [1, 16], "FP32")
    state.set_data_from_numpy(np.zeros((1, 16), np.float32))
    with pytest.raises(InferenceServerException, match="keeps its state state_0_h") as error:
        client.infer("lm_step", [character, state], sequence_id=4)
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"
    step(client, "grpc", ids[1], 4, sequence_end=True)  # still open: the refusal changed nothing
    with pytest.raises(InferenceServerException, match="a string or an unsigned integer") as error:
        step(client, "grpc", ids[0], -3, sequence_start=True)
    assert error.value.status() == "StatusCode.INVALID_ARGUMENT"
    request = service_pb2.ModelInferRequest(model_name="lm_step")
    request.inputs.add(name="character", datatype="INT32", shape=[1, 1]).contents.int_contents[
        :
    ] = [5]
    request.parameters["sequence_id"].double_param = 2.0
    with grpc.insecure_channel(server.grpc) as channel:
        raw = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as failure:
            raw(request.SerializeToString())
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "got 2.0" in failure.value.details()


def test_a_start_past_the_cap_is_429_or_resource_exhausted(server, run):
    (character,) = character_ids(run, "d")
    http, grpc_client = client_of(server, "http"), client_of(server, "grpc")
    step(http, "http", character, "one", sequence_start=True)
    step(grpc_client, "grpc", character, "two", sequence_start=True)
    status, answer = post(
        server, "/v2/models/lm_step/infer", infer_body(sequence_id="three", sequence_start=True)
    )
    assert status == 429 and "2 sequences are open, the most" in answer["error"]
    with pytest.raises(InferenceServerException, match="2 sequences are open") as error:
        step(grpc_client, "grpc", character, "three", sequence_start=True)
    assert error.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    step(http, "http", character, "one", sequence_start=True)  # a restart is no new sequence
    step(http, "http", character, "one", sequence_end=True)
    step(http, "http", character, "three", sequence_start=True)
    for sequence_id in ("two", "three"):
        step(http, "http", character, sequence_id, sequence_end=True)


def test_an_idle_sequence_is_dropped(run, tmp_path):
    """With a 0.2 s idle time: once the server logs the drop, the sequence is closed."""
    (character,) = character_ids(run, "d")
    log = tmp_path / "stderr.log"
    with serve_without_tensorflow(
        "--run", run, "--sequence-idle-seconds", "0.2", "--quiet", log=log
    ) as idle_server:
        client = client_of(idle_server, "grpc")
        step(client, "grpc", character, "idle", sequence_start=True)
        deadline = time.monotonic() + 60
        while "sequence 'idle' of lm_step dropped" not in idle_server.log():
            assert time.monotonic() < deadline, idle_server.log()
            time.sleep(0.05)
        with pytest.raises(InferenceServerException, match="sequence 'idle' of lm_step is not"):
            step(client, "grpc", character, "idle")


def test_the_cli_refuses_bad_sequence_flags(cli_error, tmp_path):
    for flag, value, fragment in [
        ("--sequence-idle-seconds", "0", "must be a number above 0, got '0'"),
        ("--sequence-idle-seconds", "nan", "must be a number above 0, got 'nan'"),
        ("--max-sequences", "0", "must be a positive integer"),
    ]:
        cli_error(server_main, ["--run", tmp_path, flag, value], flag, fragment)


# In-process, on an accumulator step graph (the next state is the state plus the input), with
# a clock the test moves.


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def accumulator(zero_initial_states: bool = True, gate: threading.Event | None = None):
    """A served step graph: ``total`` is its state, ``sum`` its output (the new total)."""

    def predict(inputs: dict) -> dict:
        if gate is not None:
            gate.wait(30)
        if "x" not in inputs:
            raise UserError("graph accumulate takes inputs x, total: missing x")
        total = np.asarray(inputs["total"]) + np.asarray(inputs["x"])
        return {"sum": total, "next_total": total}

    graph = SimpleNamespace(
        states=["total"],
        inputs=[
            {"name": "x", "dtype": "float32", "shape": [None, 1]},
            {"name": "total", "dtype": "float32", "shape": [None, 1]},
        ],
        outputs=[
            {"name": "sum", "dtype": "float32", "shape": [None, 1]},
            {"name": "next_total", "dtype": "float32", "shape": [None, 1]},
        ],
        runtime={"zero_initial_states": True} if zero_initial_states else {},
    )
    return SimpleNamespace(name="accumulate", graph=graph, predict=predict)


def add(kept: Sequences, served, value: float, sequence_id=1, **flags) -> float:
    answer = kept.predict(served, Control(sequence_id, **flags), {"x": np.array([[value]])})
    assert set(answer) == {"sum"}
    return float(answer["sum"][0, 0])


def test_states_are_kept_per_sequence_until_the_end():
    kept, served = Sequences(), accumulator()
    assert add(kept, served, 2, start=True) == 2
    assert add(kept, served, 5, "other", start=True) == 5
    assert add(kept, served, 3) == 5
    assert add(kept, served, 1, end=True) == 6
    assert len(kept) == 1
    with pytest.raises(RequestError, match="sequence 1 of accumulate is not open") as refused:
        add(kept, served, 1)
    assert refused.value.status == 400
    assert kept.predict(served, None, {"x": [[1.0]], "total": [[1.0]]})["sum"] == 2  # no sequence


def test_idle_sequences_are_dropped_and_free_their_place():
    clock, counts = Clock(), []
    kept = Sequences(10, 1, clock, counted=lambda graph, count: counts.append((graph, count)))
    served = accumulator()
    add(kept, served, 1, "a", start=True)
    clock.now = 10  # idle for exactly the limit: still open
    assert add(kept, served, 1, "a") == 2
    with pytest.raises(RequestError, match="1 sequences are open") as refused:
        add(kept, served, 1, "b", start=True)
    assert refused.value.status == 429
    clock.now = 20.5
    assert add(kept, served, 7, "b", start=True) == 7  # "a" was dropped to make room
    clock.now = 31
    kept.expire()
    assert len(kept) == 0
    # the metrics' open-sequence gauge is told each change: a opened, a dropped, b opened and
    # dropped
    assert counts == [("accumulate", 1), ("accumulate", 0), ("accumulate", 1), ("accumulate", 0)]


def test_a_second_request_of_a_running_sequence_is_a_409():
    gate = threading.Event()
    kept, served = Sequences(), accumulator(gate=gate)
    gate.set()
    add(kept, served, 1, start=True)
    gate.clear()
    running = threading.Thread(target=add, args=(kept, served, 2))
    running.start()
    deadline = time.monotonic() + 30
    while not kept._open[("accumulate", 1)].running:  # the first request holds the sequence
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(
        RequestError, match="sequence 1 of accumulate has a request running"
    ) as refused:
        add(kept, served, 4)
    assert refused.value.status == 409
    gate.set()
    running.join()
    assert add(kept, served, 4, end=True) == 7  # 1 + 2 + 4: the refused request changed nothing


def test_initial_states_zeros_or_given():
    kept = Sequences()
    assert add(kept, accumulator(), 2, start=True, end=True) == 2
    needs_state = accumulator(zero_initial_states=False)
    with pytest.raises(RequestError, match="send total with sequence_start"):
        add(kept, needs_state, 2, start=True)
    given = {"x": np.array([[2.0]]), "total": np.array([[40.0]])}
    assert kept.predict(needs_state, Control(1, start=True), given)["sum"] == 42
    assert add(kept, needs_state, 1, end=True) == 43


def test_a_refused_start_leaves_the_sequence_closed():
    kept, served = Sequences(), accumulator()
    add(kept, served, 1, start=True)
    with pytest.raises(UserError, match="missing x"):
        kept.predict(served, Control(1, start=True), {})
    with pytest.raises(RequestError, match="is not open"):
        add(kept, served, 1)


def v2_step(kept: Sequences, served, value: float, sequence_id=1, **fields) -> float:
    """One step of an Open Inference Protocol request over HTTP (JSON) and its ``sum``."""
    request = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [value]}],
        "parameters": {"sequence_id": sequence_id},
        **fields,
    }
    registry = Registry({"accumulate": served})
    body, _ = open_inference.infer(registry, "accumulate", None, json.dumps(request), None, kept)
    return json.loads(body)["outputs"][0]["data"][0]


def grpc_step(kept: Sequences, served, value: float, *outputs: str) -> None:
    """One step of sequence 1 over gRPC that asks for ``outputs``."""
    request = service_pb2.ModelInferRequest(model_name="accumulate")
    request.parameters["sequence_id"].int64_param = 1
    request.inputs.add(name="x", datatype="FP32", shape=[1, 1]).contents.fp32_contents.append(value)
    for name in outputs:
        request.outputs.add(name=name)
    open_inference_grpc._infer(Registry({"accumulate": served}), request, kept)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"outputs": [{"name": "next_total"}]}, "unknown output 'next_total' .outputs: sum."),
        ({"id": 5}, "id must be a string"),
        ({"outputs": [{"name": "sum", "parameters": 5}]}, "parameters of output sum"),
    ],
)
def test_a_refused_step_leaves_the_kept_state_as_it_was(fields, message):
    """The whole request is checked before its step runs: the server keeps no next state
    of a request it refuses (HTTP, and gRPC asking for a state)."""
    kept, served = Sequences(), accumulator()
    add(kept, served, 1, start=True)
    with pytest.raises(RequestError, match=message):
        v2_step(kept, served, 10, **fields)
    with pytest.raises(RequestError, match="unknown output 'next_total'"):
        grpc_step(kept, served, 100, "next_total")
    assert v2_step(kept, served, 2, outputs=[{"name": "sum"}]) == 3


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, None),
        ({"sequence_id": 0}, None),
        ({"sequence_id": ""}, None),
        ({"sequence_id": 5, "binary_data_output": True}, Control(5)),
        ({"sequence_id": "s", "sequence_start": True}, Control("s", start=True)),
        ({"sequence_id": 2**64 - 1, "sequence_end": True}, Control(2**64 - 1, end=True)),
    ],
)
def test_sequence_parameters(parameters, expected):
    assert sequences.control(parameters) == expected


# The Triton model repository: lm_step's states are Triton's implicit state.


def test_the_triton_config_keeps_lm_steps_states_as_implicit_state(run):
    """lm_step's config declares sequence batching with one ``state`` entry per state,
    starting at zeros (the rules Triton's sequence batcher checks at load), leaves the states
    out of its inputs and outputs, and with them is the ONNX graph's inputs and outputs, as the
    onnxruntime backend counts them; char_lm keeps dynamic batching."""
    export_dir = run / "export"
    entries = {entry["name"]: entry for entry in read_manifest(export_dir)["graphs"]}

    def config(name: str) -> ModelConfig:
        path = export_dir / "triton" / name / "config.pbtxt"
        return text_format.Parse(path.read_text(encoding="utf-8"), ModelConfig())

    step_config, entry = config("lm_step"), entries["lm_step"]
    assert step_config.WhichOneof("scheduling_choice") == "sequence_batching"
    assert config("char_lm").WhichOneof("scheduling_choice") == "dynamic_batching"
    batcher = step_config.sequence_batching
    assert batcher.max_sequence_idle_microseconds == sequences.IDLE_SECONDS * 1_000_000
    assert not batcher.control_input  # the graph takes no control tensor
    names = entry["runtime"]["states"]
    specs = {spec["name"]: spec for spec in entry["inputs"]}
    assert [(s.input_name, s.output_name) for s in batcher.state] == [
        (name, f"next_{name}") for name in names
    ]
    for state in batcher.state:
        spec = specs[state.input_name]
        assert (DataType.Name(state.data_type), spec["dtype"]) == ("TYPE_FP32", "float32")
        assert list(state.dims) == spec["shape"][1:]  # without the batch axis
        (initial,) = state.initial_state  # Triton: exactly one or none
        assert initial.name and initial.data_type == state.data_type
        assert initial.WhichOneof("state_data") == "zero_data" and initial.zero_data
        assert list(initial.dims) == list(state.dims) and -1 not in initial.dims
    assert [t.name for t in step_config.input] == ["character"]
    assert [t.name for t in step_config.output] == ["logits"]
    model = export_dir / "triton" / "lm_step" / "1" / "model.onnx"
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert {i.name for i in session.get_inputs()} == {"character", *names}
    assert {o.name for o in session.get_outputs()} == {"logits", *(f"next_{n}" for n in names)}
