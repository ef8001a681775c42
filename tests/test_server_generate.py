"""Triton's generate extension on python -m serving.server (TensorFlow blocked): /generate and
/generate_stream give serving.predict's text for the same settings, one server-sent event per
character; a client that leaves mid-stream stops its generation and disturbs no one else; bad
requests are one-line 400s; SIGTERM lets a stream in flight finish; the metrics count both
routes under charlm, lm_step's runs as its executions, and the stream while it is open. The
charlm task model's Open Inference Protocol ``infer`` gives the same text, in process and to
tritonclient's HTTP and gRPC clients, and so does ``serving.clients --model`` with the URL
alone."""

from __future__ import annotations

import http.client
import json
import re
import time
from collections.abc import Iterator

import numpy as np
import pytest

from serving.runtime.graph import load_graph, manifest_entry
from serving.server.generate import MAX_INFER_CHARACTERS, CharLM, generate_request
from serving.server.metrics import V2_HTTP
from serving.server.models import ObservedGraph, RequestError
from tests import test_clients
from tests.conftest import run_without_tensorflow, serve_without_tensorflow
from tests.test_charlm import CHARLM
from tests.test_server_metrics import REQUEST, increase, samples, scraped
from tests.test_server_tasks import texts, triton_infer, unpadded

GENERATE = "/v2/models/charlm/generate"
STREAM = "/v2/models/charlm/generate_stream"
CASES = [  # (text_input, parameters): sampled, with characters outside the vocabulary, defaults
    ("def f", {"length": 80, "temperature": 1.0, "top_k": 0, "seed": 7}),
    ("x = Ω√", {"length": 60, "temperature": 0.7, "top_k": 5, "seed": 3}),
    ("def f", {}),
]
FLAGS = {"length": "--length", "temperature": "--temperature", "top_k": "--top-k", "seed": "--seed"}


@pytest.fixture(scope="module")
def charlm(tiny_runs):
    return CHARLM.exported(tiny_runs)


@pytest.fixture(scope="module")
def predicted(charlm) -> list[dict]:
    """What ``serving.predict --json`` prints for each case."""
    answers = []
    for text, parameters in CASES:
        flags = [option for name, value in parameters.items() for option in (FLAGS[name], value)]
        result = run_without_tensorflow(
            "serving.predict", charlm, "--prefix", text, *flags, "--json"
        )
        assert result.returncode == 0, result.stderr
        answers.append(json.loads(result.stdout))
    return answers


@pytest.fixture(scope="module")
def server(charlm, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "stderr.log"
    with serve_without_tensorflow("--run", charlm, log=log) as served:
        yield served


def post(server, path: str, body) -> http.client.HTTPResponse:
    """The response to ``body`` (JSON unless bytes), its body left unread."""
    connection = http.client.HTTPConnection(server.http, timeout=60)
    connection.request("POST", path, body if isinstance(body, bytes) else json.dumps(body))
    return connection.getresponse()


def events(response: http.client.HTTPResponse) -> Iterator[dict]:
    """A generate_stream response's server-sent events, each as it arrives."""
    for line in response:
        if line.startswith(b"data: "):
            yield json.loads(line.removeprefix(b"data: "))
        else:
            assert line == b"\n", line  # an event ends with an empty line


def request(text: str, parameters: dict) -> dict:
    return {"text_input": text, "parameters": parameters}


def test_generate_and_each_streamed_character_equal_serving_predict(server, predicted):
    for (text, parameters), expected in zip(CASES, predicted, strict=True):
        response = post(server, GENERATE, request(text, parameters))
        assert response.status == 200 and response.headers["Content-Type"].startswith(
            "application/json"
        )
        assert json.loads(response.read()) == {
            "model_name": "charlm",
            "model_version": "1",
            "text_output": expected["generated"],
            "unknown": expected["unknown"],
        }
        stream = post(server, STREAM, request(text, parameters))
        assert stream.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        streamed = list(events(stream))
        assert len(streamed) == len(expected["generated"]) > 1  # one event per character
        assert "".join(event["text_output"] for event in streamed) == expected["generated"]
        assert streamed[0]["unknown"] == expected["unknown"]
        assert all(e["model_name"] == "charlm" and e["model_version"] == "1" for e in streamed)
    assert {"Ω", "√"} <= set(predicted[1]["unknown"])  # the case has some to report


def test_parameters_beside_text_input_and_a_stream_of_nothing(server, predicted):
    text, parameters = CASES[0]
    beside = post(server, GENERATE, {"text_input": text, **parameters})  # the extension allows
    assert json.loads(beside.read())["text_output"] == predicted[0]["generated"]
    nothing = list(events(post(server, STREAM, request(text, {"length": 0}))))
    assert [event["text_output"] for event in nothing] == [""]


def test_a_client_that_leaves_mid_stream_stops_its_generation_alone(server, predicted):
    logged = len(server.log())
    leaving = http.client.HTTPConnection(server.http, timeout=60)
    leaving.request("POST", STREAM, json.dumps(request("def f", {"length": 100_000})))
    longest = leaving.getresponse()
    next(events(longest))
    text, parameters = CASES[0]
    other = post(server, STREAM, request(text, parameters))
    first = next(events(other))
    longest.close()  # the first client leaves, the second is half way through its stream
    leaving.close()
    rest = [event["text_output"] for event in events(other)]
    assert first["text_output"] + "".join(rest) == predicted[0]["generated"]
    # Wait for the server's line about the client that left, not for access lines: the
    # previous test's stream can log its own after its client has read it all.
    pattern, deadline = rf"left {STREAM}: stopped after (\d+) characters", time.monotonic() + 60
    while (left := re.search(pattern, server.log()[logged:])) is None:
        assert server.process.poll() is None and time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    assert int(left[1]) < 100_000
    again = post(server, GENERATE, request(text, parameters))
    assert json.loads(again.read())["text_output"] == predicted[0]["generated"]


BAD = [  # (body, status, what the error says)
    ({"text_input": ""}, 400, "text_input is empty"),
    ({"text_input": "d" * 100_001}, 400, "text_input has 100001 characters: at most 100000"),
    (request("d", {"max_tokens": 5}), 400, "unknown parameter 'max_tokens' for model charlm"),
    ({"text_input": "d", "stream": 1}, 400, "stream must be true or false, got 1"),
    (request("d", {"temperature": -1}), 400, "parameter temperature must be >= 0"),
    (b'{"text_input": "d", "parameters": {"temperature": 1e999}}', 400, "must be >= 0, got inf"),
    (request("d", {"temperature": 10**400}), 400, "parameter temperature is too large"),
    (request("d", {"top_k": 999}), 400, "parameter top_k must be in [0,"),
    (request("d", {"length": -1}), 400, "parameter length must be in [0, 100000]"),
    (request("d", {"length": 100_001}), 400, "parameter length must be in [0, 100000]"),
    (request("d", {"seed": -1}), 400, "parameter seed must be >= 0"),
    (request("d", {"length": "5"}), 400, "parameter length must be an integer, got '5'"),
    (request("d", {"length": 5.0}), 400, "parameter length must be an integer"),
    (request("d", {"top_k": True}), 400, "parameter top_k must be an integer"),
    (request("d", {"temperature": "hot"}), 400, "parameter temperature must be a number"),
    ({"text_input": "d", "length": 3, "parameters": {"length": 5}}, 400, "length given twice"),
    ({"text_input": 5}, 400, "text_input must be a string, got int"),
    ({"text_input": "d", "parameters": [1]}, 400, "parameters must be an object, got list"),
    ({"parameters": {}}, 400, "a JSON object with a text_input string"),
    (["d"], 400, "a JSON object with a text_input string"),
    (b"{", 400, "malformed JSON"),
    (b'{"text_input": "d", "parameters": {"temperature": NaN}}', 400, "NaN is not a number"),
]


@pytest.mark.parametrize("path", [GENERATE, STREAM])
def test_bad_requests_are_one_line_errors_before_anything_streams(server, path):
    for body, status, fragment in BAD:
        response = post(server, path, body)
        assert (response.status, response.headers["Content-Type"]) == (status, "application/json")
        error = json.loads(response.read())["error"]
        assert fragment in error and "\n" not in error, (body, error)
    elsewhere = [
        (path.replace("charlm", "lm_step"), 404, "no model lm_step generates text"),
        (path.replace("charlm", "charlm/versions/2"), 404, "Specific(charlm, 2)"),
    ]
    for other, status, fragment in elsewhere:
        response = post(server, other, {"text_input": "d"})
        assert (response.status, fragment in json.loads(response.read())["error"]) == (status, True)
    connection = http.client.HTTPConnection(server.http, timeout=60)
    connection.request("GET", path)
    assert connection.getresponse().status == 405
    assert post(server, path, {"text_input": "d", "parameters": {"length": 3}}).status == 200


def test_metrics_count_generation_under_charlm_and_a_stream_while_it_is_open(server, charlm):
    text, parameters = CASES[0]
    export = charlm / "export"
    step = ObservedGraph(export, manifest_entry(export, "lm_step"))
    runs = []
    step.executed = runs.append
    CharLM("charlm", charlm, {"lm_step": step}).infer(
        {"text_input": np.array([text.encode()], dtype=np.object_)}, parameters
    )
    before = scraped(server)
    assert post(server, GENERATE, request(text, parameters)).status == 200
    generated = scraped(server)
    assert increase(before, generated, "nv_inference_request_success", REQUEST) == {
        ("charlm", "1", V2_HTTP): 1
    }
    executions = increase(before, generated, "nv_inference_exec_count", ("model", "version"))
    assert executions == {("lm_step", "1"): len(runs)}  # as many as generating it here

    logged = server.log().count(f"POST {STREAM} 200")
    leaving = http.client.HTTPConnection(server.http, timeout=60)
    leaving.request("POST", STREAM, json.dumps(request(text, {"length": 100_000})))
    streaming = leaving.getresponse()
    next(events(streaming))  # 100,000 characters take seconds, and their events back up unread
    open_streams = ("keras_rnn_open_streams", ("model", "version"))
    assert samples(scraped(server), *open_streams) == {("charlm", "1"): 1}
    streaming.close()
    leaving.close()
    while server.log().count(f"POST {STREAM} 200") == logged:  # the stream has ended
        assert server.process.poll() is None
        time.sleep(0.05)
    ended = scraped(server)
    assert samples(ended, *open_streams) == {("charlm", "1"): 0}
    # the stream whose client left counts as failed: 499, client closed
    assert increase(generated, ended, "nv_inference_request_success", REQUEST) == {}
    failures = increase(generated, ended, "nv_inference_request_failure", (*REQUEST, "code"))
    assert failures == {("charlm", "1", V2_HTTP, "499"): 1}


def test_sigterm_lets_a_stream_in_flight_finish(charlm, predicted, tmp_path):
    text, parameters = CASES[0]
    parameters = {**parameters, "length": 5000}
    with serve_without_tensorflow("--run", charlm, log=tmp_path / "log") as served:
        stream = post(served, STREAM, request(text, parameters))
        received = events(stream)
        first = next(received)["text_output"]
        served.process.terminate()
        while "stopping on SIGTERM" not in served.log():
            assert served.process.poll() is None
            time.sleep(0.05)
        assert "answering the 1 HTTP request(s) in flight" in served.log()
        rest = "".join(event["text_output"] for event in received)
        status, stdout, _ = served.exited()
    assert len(first + rest) == 5000
    assert (first + rest).startswith(predicted[0]["generated"])  # the same seed's first 80
    assert status == 0 and "stopped on SIGTERM" in stdout


def test_the_task_models_infer_gives_the_same_text(charlm, predicted):
    model = CharLM("charlm", charlm, {"lm_step": load_graph(charlm / "export", "lm_step")})
    for (text, parameters), expected in zip(CASES, predicted, strict=True):
        texts = np.array([text.encode(), b"d"], dtype=np.object_)
        outputs = model.infer({"text_input": texts}, parameters)
        assert outputs["text_output"][0] == expected["generated"]
        unknown = expected["unknown"]
        assert outputs["unknown"].tolist() == [unknown, [""] * len(unknown)]  # padded rows
    assert model.metadata()["inputs"] == (
        {"name": "text_input", "datatype": "BYTES", "shape": [-1]},
    )
    with pytest.raises(RequestError, match="text_input element 1 is not UTF-8 text"):
        model.infer({"text_input": np.array([b"d", b"\xff"], dtype=np.object_)}, {})
    with pytest.raises(RequestError, match="takes inputs text_input, got prefix"):
        model.infer({"prefix": texts}, {})


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_charlm_model_answers_tritonclient_as_predict(server, predicted, protocol):
    for (text, parameters), expected in zip(CASES, predicted, strict=True):
        inputs = {"text_input": texts([text])}
        outputs = triton_infer(server, protocol, "charlm", inputs, parameters or None)
        assert outputs["text_output"].tolist() == [expected["generated"]]
        assert unpadded(outputs["unknown"][0]) == expected["unknown"]


def test_the_clients_cli_generates_by_the_model_with_the_url_alone(server, charlm, cli_error):
    from serving.clients.__main__ import main

    url = ["--url", server.url]
    prefix = "x = Ω√"  # with characters outside the vocabulary
    expected = test_clients.predicted(charlm, "--prefix", prefix)
    assert test_clients.served("--model", "charlm", "--prefix", prefix, *url) == expected
    assert expected["unknown"]
    cli_error(main, ["--model", "charlm", "--prefix", "d", "--seed", "3", *url], "--seed: TF")
    cli_error(main, ["--model", "charlm", *url], "a charlm model needs --prefix")


def test_a_stream_parameter_must_say_the_route():
    """The generate extension's examples send ``stream``: taken where it says the route."""
    for streaming in (False, True):
        body = json.dumps({"text_input": "d", "parameters": {"stream": streaming, "length": 2}})
        assert generate_request(body.encode(), streaming) == ("d", {"length": 2})
        body = json.dumps({"text_input": "d", "stream": not streaming})
        with pytest.raises(RequestError, match=f"stream {str(not streaming).lower()} asks for"):
            generate_request(body.encode(), streaming)
    with pytest.raises(RequestError, match="stream must be true or false, got 1"):
        generate_request(b'{"text_input": "d", "stream": 1}', False)


def test_infer_refuses_more_characters_than_one_worker_call_may_generate():
    """Texts x length past ``MAX_INFER_CHARACTERS`` is a 400 pointing to generate_stream,
    before anything runs (the model here has no graph to run)."""
    model = CharLM.__new__(CharLM)
    model.name = "charlm"
    many = np.array([b"d"] * (MAX_INFER_CHARACTERS // 200 + 1), dtype=object)  # length 200
    for text_input, parameters in (
        (many, {}),
        (np.array([b"d"], dtype=object), {"length": MAX_INFER_CHARACTERS + 1}),
    ):
        with pytest.raises(
            RequestError, match=r"characters to generate: at most .*generate_stream"
        ):
            model.infer({"text_input": text_input}, parameters)
