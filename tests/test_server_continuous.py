"""Continuous batching (serving.server.continuous): concurrent requests step together, and
every answer equals the same request's alone.

Translations, greedy and beam, over TF Serving's REST API and tritonclient's HTTP and gRPC
clients; generations (charlm) over generate, generate_stream and the Open Inference Protocol,
each text serving.predict's. A request joins mid-decode and rows leave as they end; a client
that disconnects disturbs no other request (a stream's row leaves the batch); a stopping
decoder and a server sent SIGTERM finish what is in flight."""

from __future__ import annotations

import http.client
import json
import random
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from serving.runtime.charlm import onnx_generate
from serving.runtime.decoding import Sampling
from serving.runtime.graph import load_graph
from serving.runtime.translate import Translator, onnx_translator
from serving.runtime.vocab import Vocabulary
from serving.server.continuous import ContinuousGenerator, ContinuousTranslator
from tests import test_server_generate as generating
from tests.conftest import read_until_closed, serve_without_tensorflow
from tests.test_charlm import CHARLM
from tests.test_server import post, request
from tests.test_server_batching import wait_until
from tests.test_server_metrics import increase, scraped
from tests.test_server_tasks import texts, triton_infer
from tests.test_translate import LUONG, QUERIES


@pytest.fixture(scope="module")
def run(tiny_runs):
    return LUONG.exported(tiny_runs)


@pytest.fixture(scope="module")
def translator(run) -> Translator:
    """serving.predict's translator of the run."""
    return onnx_translator(load_graph(run / "export", "decoder_step"))


@pytest.fixture(scope="module")
def sentences(run) -> list[str]:
    """The run's test split (sources of many lengths) and the tests' queries."""
    from keras_rnn.runs import finished_run
    from keras_rnn.tasks.translate.data import read_splits

    _, config = finished_run(run)
    return [source for source, _ in read_splits(config)[0]["test"][:12]] + list(QUERIES)


def alone(translator: Translator, sources: list[str], width: int, penalty: float = 1.0):
    """The texts and float32 scores the request gets alone (as serving.predict decodes it)."""
    found = translator.beam(sources, width, penalty) if width > 1 else translator.greedy(sources)
    return [t.text for t in found], np.array([t.score for t in found], np.float32)


class Gate:
    """A step that records each call's rows and holds call ``hold_at`` until ``release()``."""

    def __init__(self, step, hold_at: int):
        self.step, self.hold_at = step, hold_at
        self.rows: list[int] = []
        self.holding, self.released = threading.Event(), threading.Event()

    def __call__(self, tokens, states):
        self.rows.append(len(tokens))
        if len(self.rows) == self.hold_at:
            self.holding.set()
            assert self.released.wait(30)
        return self.step(tokens, states)

    def release(self) -> None:
        self.released.set()


def gated(run, hold_at: int) -> tuple[ContinuousTranslator, Gate]:
    translator = onnx_translator(load_graph(run / "export", "decoder_step"))
    gate = Gate(translator.step, hold_at)
    translator.step = gate
    return ContinuousTranslator(translator, max_rows=32), gate


def test_a_request_joins_mid_decode_and_rows_leave_as_they_end(run, translator, sentences):
    decoder, gate = gated(run, hold_at=3)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(decoder.translate, sentences[:1], 3, 0.5)
        assert gate.holding.wait(30)
        second = pool.submit(decoder.translate, sentences[1:3], 1)
        wait_until(lambda: decoder.waiting == 1)
        gate.release()
        beam, greedy = first.result(30), second.result(30)
    decoder.close()
    assert ([t.text for t in beam], [np.float32(t.score) for t in beam]) == tuple(
        map(list, alone(translator, sentences[:1], 3, 0.5))
    )
    assert [t.text for t in greedy] == alone(translator, sentences[1:3], 1)[0]
    np.testing.assert_array_equal(
        [t.score for t in greedy], [t.score for t in translator.greedy(sentences[1:3])]
    )
    # the beam's step 4 ran its 3 beams beside the 2 greedy rows that joined; in the end only
    # the rows still decoding stepped
    assert gate.rows[:3] == [1, 3, 3] and gate.rows[3] == 5
    assert gate.rows[-1] < max(gate.rows)


def test_closing_the_decoder_finishes_the_requests_in_flight(run, translator, sentences):
    decoder, gate = gated(run, hold_at=2)
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(decoder.translate, sentences[:4], 2, 1.0)
        assert gate.holding.wait(30)
        closing = pool.submit(decoder.close)
        gate.release()
        closing.result(30)
        assert [t.text for t in answer.result(30)] == alone(translator, sentences[:4], 2)[0]
    with pytest.raises(RuntimeError, match="closed"):
        decoder.translate(sentences[:1])


@pytest.fixture(scope="module")
def server(run, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "stderr.log"
    with serve_without_tensorflow("--run", run, "--workers", "2", log=log) as served:
        yield served


def mixed_requests(sentences: list[str], count: int, seed: int = 0) -> list[tuple]:
    """(protocol, texts, beam width, length penalty) of requests of 1 to 4 texts each."""
    rng = random.Random(seed)
    requests = []
    for index in range(count):
        protocol = ("rest", "http", "grpc")[index % 3]
        width = 1 if protocol == "rest" else rng.choice((1, 2, 4))
        sources = rng.sample(sentences, rng.randint(1, 4))
        requests.append((protocol, sources, width, rng.choice((0.0, 0.6, 1.0))))
    return requests


def answer(server, protocol: str, sources: list[str], width: int, penalty: float):
    """The server's texts and scores (None over REST, which answers translations only)."""
    if protocol == "rest":
        status, body = post(server, "/v1/models/translate:predict", {"instances": sources})
        assert status == 200, body
        return body["predictions"], None
    parameters = {"beam_width": width, "length_penalty": penalty} if width > 1 else None
    outputs = triton_infer(server, protocol, "translate", {"text": texts(sources)}, parameters)
    return list(outputs["translation"]), outputs["score"]


def test_concurrent_mixed_requests_equal_lone_requests_on_every_protocol(
    server, translator, sentences
):
    requests = mixed_requests(sentences, 36)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda r: answer(server, *r), requests))
    for (_, sources, width, penalty), (found, scores) in zip(requests, answers, strict=True):
        expected, expected_scores = alone(translator, sources, width, penalty)
        assert found == expected
        if scores is not None:
            np.testing.assert_array_equal(scores, expected_scores)
    assert {width for _, _, width, _ in requests} == {1, 2, 4}


def raw_post(server, path: str, document) -> socket.socket:
    """A connection that has sent a POST and not read its answer."""
    host, port = server.http.split(":")
    body = json.dumps(document).encode()
    connection = socket.create_connection((host, int(port)), timeout=60)
    connection.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body
    )
    return connection


def beam_request(sources: list[str], width: int) -> dict:
    return {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(sources)], "data": sources}],
        "parameters": {"beam_width": width},
    }


def test_a_client_that_disconnects_mid_batch_disturbs_no_other(server, translator, sentences):
    requests = mixed_requests(sentences, 12, seed=1)
    with ThreadPoolExecutor(6) as pool:
        answers = [pool.submit(answer, server, *r) for r in requests]
        for _ in range(3):  # large requests whose clients leave before their answers
            raw_post(server, "/v2/models/translate/infer", beam_request(sentences, 8)).close()
        found = [future.result(60) for future in answers]
    for (_, sources, width, penalty), (texts_found, _) in zip(requests, found, strict=True):
        assert texts_found == alone(translator, sources, width, penalty)[0]
    assert request(server, "GET", "/v2/health/ready")[0] == 200


def test_sigterm_finishes_the_decodes_in_flight(run, translator, sentences, tmp_path):
    with serve_without_tensorflow("--run", run, log=tmp_path / "log") as served:
        # large requests (beams of 16 over every sentence), so that decodes are in flight
        connections = [
            raw_post(served, "/v2/models/translate/infer", beam_request(sentences, 16))
            for _ in range(3)
        ]
        assert request(served, "GET", "/v1/models/translate")[0] == 200  # all three were read
        served.process.terminate()
        replies = [read_until_closed(connection) for connection in connections]
        status, stdout, _ = served.exited()
    expected = alone(translator, sentences, 16)[0]
    for reply in replies:
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        outputs = json.loads(reply.split(b"\r\n\r\n", 1)[1])["outputs"]
        assert next(o for o in outputs if o["name"] == "translation")["data"] == expected
    assert status == 0 and "stopped on SIGTERM" in stdout


@pytest.fixture(scope="module")
def charlm(tiny_runs):
    return CHARLM.exported(tiny_runs)


def lm_step(charlm):
    return load_graph(charlm / "export", "lm_step")


def vocabulary(graph) -> Vocabulary:
    return Vocabulary.load(graph.export_dir / graph.runtime["vocab"])


GENERATIONS = [  # (prefix, settings): prefixes, lengths, temperatures, top_k and seeds differ
    (prefix, Sampling(length, temperature, top_k, seed))
    for seed, (prefix, length, temperature, top_k) in enumerate(
        [
            ("def f", 80, 1.0, 0),
            ("x = Ω√", 60, 0.7, 5),
            ("d", 120, 0.5, 0),
            ("import os\nimport sys\n", 40, 0.0, 0),
            ("class A:", 1, 1.5, 3),
            ("我要", 0, 1.0, 0),
            ("ab" * 30, 70, 0.3, 2),
        ]
    )
]


def generated_alone(charlm, prefix: str, settings: Sampling) -> tuple[str, list[str]]:
    """serving.predict's text for the request, and the prefix's unknown characters."""
    graph = lm_step(charlm)
    return onnx_generate(graph, vocabulary(graph), prefix, settings)


def generator(charlm, hold_at: int = 0) -> tuple[ContinuousGenerator, Gate]:
    graph = lm_step(charlm)
    decoder = ContinuousGenerator(graph, vocabulary(graph), max_rows=32)
    gate = Gate(decoder.step, hold_at)
    decoder.step = gate
    return decoder, gate


def joined(generation: tuple) -> tuple[str, list[str]]:
    pieces, unknown = generation
    return "".join(pieces), unknown


def test_concurrent_generations_equal_each_alone_and_one_joins_mid_generation(charlm):
    decoder, gate = generator(charlm, hold_at=3)
    with ThreadPoolExecutor(len(GENERATIONS)) as pool:
        first = pool.submit(joined, decoder.stream(*GENERATIONS[0]))
        assert gate.holding.wait(30)
        later = [decoder.stream(*generation) for generation in GENERATIONS[1:]]
        wait_until(lambda: decoder.waiting == len(later))
        gate.release()
        found = [first.result(30), *pool.map(joined, later)]
    decoder.close()
    for generation, answer in zip(GENERATIONS, found, strict=True):
        assert answer == generated_alone(charlm, *generation)
    # step 4 ran the first row beside the rows that joined (one row each, but length 0's)
    assert gate.rows[:3] == [1, 1, 1] and gate.rows[3] == len(GENERATIONS) - 1
    assert gate.rows[-1] == 1  # the longest ran its last steps alone


def test_a_closed_generation_leaves_its_row_and_the_others_go_on(charlm):
    decoder, gate = generator(charlm)
    leaving, _ = decoder.stream("def f", Sampling(length=100_000, temperature=1.0))
    staying = decoder.stream(*GENERATIONS[0])
    first = [next(leaving) for _ in range(5)]
    leaving.close()
    assert len(first) == 5 and list(leaving) == []  # its characters end there
    assert joined(staying) == generated_alone(charlm, *GENERATIONS[0])
    wait_until(lambda: decoder.rows == 0)
    decoder.close()
    assert gate.rows[-1] == 1 and len(gate.rows) < 1000
    with pytest.raises(RuntimeError, match="closed"):
        decoder.stream("d", Sampling())


@pytest.fixture(scope="module")
def charlm_server(charlm, tmp_path_factory):
    log = tmp_path_factory.mktemp("charlm") / "stderr.log"
    with serve_without_tensorflow("--run", charlm, "--workers", "2", log=log) as served:
        yield served


def settings_of(settings: Sampling) -> dict:
    return {
        "length": settings.length,
        "temperature": settings.temperature,
        "top_k": settings.top_k,
        "seed": settings.seed,
    }


def served_generation(server, route: str, prefix: str, settings: Sampling) -> tuple:
    """The text and unknown characters the server answers ``route`` with."""
    body = generating.request(prefix, settings_of(settings))
    if route == "infer":
        outputs = triton_infer(
            server, "http", "charlm", {"text_input": texts([prefix])}, body["parameters"]
        )
        return outputs["text_output"][0], [c for c in outputs["unknown"][0] if c]
    response = generating.post(server, route, body)
    assert response.status == 200
    if route == generating.GENERATE:
        answer = json.loads(response.read())
        return answer["text_output"], answer["unknown"]
    events = list(generating.events(response))
    return "".join(event["text_output"] for event in events), events[0]["unknown"]


def test_concurrent_generate_stream_and_infer_requests_equal_lone_requests(charlm, charlm_server):
    routes = (generating.GENERATE, generating.STREAM, "infer")
    requests = [
        (routes[index % 3], *generation) for index, generation in enumerate(GENERATIONS * 3)
    ]
    with ThreadPoolExecutor(len(requests)) as pool:
        found = list(pool.map(lambda r: served_generation(charlm_server, *r), requests))
    for (_, prefix, settings), answer in zip(requests, found, strict=True):
        assert answer == generated_alone(charlm, prefix, settings)


def test_a_stream_client_that_leaves_frees_its_row_and_disturbs_no_other(charlm, charlm_server):
    server = charlm_server
    logged = len(server.log())
    leaving = http.client.HTTPConnection(server.http, timeout=60)
    leaving.request(
        "POST", generating.STREAM, json.dumps(generating.request("d", {"length": 100_000}))
    )
    long_stream = leaving.getresponse()
    next(generating.events(long_stream))
    with ThreadPoolExecutor(4) as pool:
        others = [
            pool.submit(served_generation, server, generating.STREAM, *generation)
            for generation in GENERATIONS[:4]
        ]
        long_stream.close()  # the client leaves while the others stream
        leaving.close()
        found = [other.result(60) for other in others]
    for generation, answer in zip(GENERATIONS[:4], found, strict=True):
        assert answer == generated_alone(charlm, *generation)
    wait_until(lambda: "left " + generating.STREAM in server.log()[logged:])
    # its row has left the batch: a lone request's steps now run one row each
    before = scraped(server)
    assert served_generation(server, generating.GENERATE, *GENERATIONS[0])[0]
    after = scraped(server)
    labels = ("model", "version")
    steps = increase(before, after, "nv_inference_exec_count", labels)[("lm_step", "1")]
    rows = increase(before, after, "nv_inference_count", labels)[("lm_step", "1")]
    assert rows == steps == len(GENERATIONS[0][0]) + GENERATIONS[0][1].length - 1


def test_sigterm_lets_the_streams_in_flight_finish(charlm, tmp_path):
    generations = [
        (prefix, Sampling(5000, settings.temperature, settings.top_k, settings.seed))
        for prefix, settings in GENERATIONS[:4]
    ]
    with serve_without_tensorflow("--run", charlm, log=tmp_path / "log") as served:
        streams, texts_so_far = [], []
        for prefix, settings in generations:
            body = generating.request(prefix, settings_of(settings))
            streams.append(generating.events(generating.post(served, generating.STREAM, body)))
            texts_so_far.append(next(streams[-1])["text_output"])  # each one is streaming
        served.process.terminate()
        found = [
            text + "".join(event["text_output"] for event in stream)
            for text, stream in zip(texts_so_far, streams, strict=True)
        ]
        status, stdout, _ = served.exited()
    for generation, text in zip(generations, found, strict=True):
        assert text == generated_alone(charlm, *generation)[0]
    assert status == 0 and "stopped on SIGTERM" in stdout
