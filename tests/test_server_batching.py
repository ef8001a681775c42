"""Dynamic batching never changes an answer: the batcher alone with fake run functions (batch
sizes, keys, the delay, errors that stay with their request, padding on the right and cutting
back), then the real exports (sine, unmasked: equal shapes only; tagging, masked: any lengths),
whose batched runs the metrics count as one execution each, and python -m serving.server
under concurrent mixed-length requests on both protocols, bad requests among them, and a
SIGTERM while requests wait for their batch."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http

from serving.runtime.graph import load_graph
from serving.runtime.sine import forecast
from serving.runtime.tagging import load_tags, tag
from serving.runtime.vocab import Vocabulary
from serving.server.batching import (
    BatchedGraph,
    Batcher,
    BatchOptions,
    GraphBatchers,
    batchable,
    paddable_input,
)
from serving.server.metrics import Metrics
from serving.server.models import load_runs
from serving.server.tasks import load_models
from tests.conftest import (
    assert_user_error,
    read_until_closed,
    run_without_tensorflow,
    serve_without_tensorflow,
)
from tests.test_server import SINE, post, request

TAGGER = "tagger"
SHAPES = [(1, 5), (2, 3), (1, 7)]  # rows and steps of three tagger requests batched together


class Recorder:
    """A run function that records each batch; ``hold()`` makes the next call wait for
    ``release()`` so that requests queue behind it."""

    def __init__(self, answer=lambda request: request):
        self.batches: list[list] = []
        self.answer = answer
        self.started, self.released = threading.Event(), threading.Event()
        self.released.set()

    def __call__(self, requests: list) -> list:
        self.batches.append(list(requests))
        self.started.set()
        assert self.released.wait(30)
        return [self.answer(request) for request in requests]

    def hold(self, batcher: Batcher) -> None:
        """Submit a request whose run waits; returns once it is running."""
        self.released.clear()
        self.started.clear()
        batcher.submit("hold", "hold")
        assert self.started.wait(30)

    def release(self) -> None:
        self.released.set()


def wait_until(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def batcher(run, max_batch_size: int = 4, delay_us: int = 0) -> Batcher:
    return Batcher("test", run, BatchOptions(max_batch_size, delay_us))


def test_queued_requests_run_in_batches_of_at_most_the_maximum_rows():
    run = Recorder()
    queue = batcher(run, max_batch_size=4)
    run.hold(queue)
    futures = [queue.submit(index, "a") for index in range(10)]
    run.release()
    assert [future.result(30) for future in futures] == list(range(10))
    assert run.batches == [["hold"], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    queue.close()


def test_only_requests_of_one_key_batch_and_rows_count_toward_the_maximum():
    run = Recorder()
    queue = batcher(run, max_batch_size=4)
    run.hold(queue)
    submitted = [("a1", "a", 3), ("b1", "b", 1), ("a2", "a", 2), ("a3", "a", 1), ("big", "a", 9)]
    futures = [queue.submit(request, key, rows) for request, key, rows in submitted]
    run.release()
    assert [future.result(30) for future in futures] == ["a1", "b1", "a2", "a3", "big"]
    # the oldest request leads each batch; a2 does not fit beside a1, which closes that batch
    # (a key's requests keep their order); big runs alone
    assert run.batches == [["hold"], ["a1"], ["b1"], ["a2", "a3"], ["big"]]
    queue.close()


def test_run_runs_a_lone_request_in_the_calling_thread_and_batches_under_load():
    threads = []
    run = Recorder(lambda request: threads.append(threading.current_thread()) or request)
    queue = batcher(run)
    assert queue.run("alone", "a") == "alone" and threads == [threading.current_thread()]
    run.hold(queue)  # the one call is busy: requests queue for the batcher's thread
    with ThreadPoolExecutor(3) as pool:
        answers = [pool.submit(queue.run, index, "a") for index in range(3)]
        wait_until(lambda: queue.waiting == 3)
        run.release()
        assert [answer.result(30) for answer in answers] == [0, 1, 2]
    assert run.batches[-1] == [0, 1, 2] and threads[-1].name == "batch-test-0"
    queue.close()


def test_a_full_batch_does_not_wait_for_the_delay_and_a_lone_request_waits_for_it():
    run = Recorder()
    patient = batcher(run, max_batch_size=2, delay_us=600_000_000)  # ten minutes
    first, second = patient.submit(1, "a"), patient.submit(2, "a")
    assert (first.result(30), second.result(30)) == (1, 2)
    assert run.batches == [[1, 2]]
    patient.close()

    delay = 0.05
    lone = batcher(Recorder(), delay_us=int(delay * 1e6))
    started = time.monotonic()
    assert lone.submit(1, "a").result(30) == 1
    assert time.monotonic() - started >= delay
    lone.close()


def test_flush_and_close_run_what_waits_for_the_delay():
    run = Recorder()
    patient = batcher(run, delay_us=600_000_000)
    waiting = patient.submit(1, "a")
    patient.flush()
    assert waiting.result(30) == 1
    queued = [patient.submit(index, "a") for index in (2, 3)]
    patient.close()
    assert [future.done() for future in queued] == [True, True]
    assert [future.result() for future in queued] == [2, 3]
    with pytest.raises(RuntimeError, match="closed"):
        patient.submit(4, "a")


def test_a_failing_request_fails_alone_and_its_batchmates_get_their_answers():
    def answer(request):
        if request == "bad":
            raise ValueError("bad request")
        return request.upper()

    def run(requests):
        return [answer(request) for request in requests]

    recorder = Recorder(lambda request: request)
    queue = batcher(lambda requests: run(recorder(requests)), max_batch_size=8)
    recorder.hold(queue)
    futures = [queue.submit(request, "a") for request in ("x", "bad", "y")]
    recorder.release()
    assert futures[0].result(30) == "X" and futures[2].result(30) == "Y"
    with pytest.raises(ValueError, match="bad request"):
        futures[1].result(30)
    assert recorder.batches == [["hold"], ["x", "bad", "y"], ["x"], ["bad"], ["y"]]
    queue.close()


def test_a_run_giving_too_few_answers_runs_each_request_alone():
    calls = []

    def short(requests):
        calls.append(len(requests))
        return requests[:1]

    run = Recorder()
    queue = batcher(lambda requests: short(run(requests)))
    run.hold(queue)
    futures = [queue.submit(index, "a") for index in range(3)]
    run.release()
    assert [future.result(30) for future in futures] == [0, 1, 2]
    assert calls == [1, 3, 1, 1, 1]
    queue.close()


class MaskedSum:
    """A fake masked graph: ``ids`` (batch, steps) with 0 as padding -> ``totals`` (the sum
    of each row's valid ids) and ``running`` (the running sum at every step, masked steps
    repeating the last, as Keras's masked recurrent layers do); ``runs`` records its feeds."""

    name = "masked_sum"

    def __init__(self) -> None:
        self.inputs = [{"name": "ids", "dtype": "int32", "shape": [None, None]}]
        self.outputs = [
            {"name": "totals", "dtype": "int32", "shape": [None]},
            {"name": "running", "dtype": "int32", "shape": [None, None]},
        ]
        self.masked_input = {"name": "ids", "pad_value": 0}
        self.runs: list[dict] = []

    def run(self, feed: dict) -> dict:
        self.runs.append(feed)
        running = np.cumsum(feed["ids"], axis=1)
        return {"totals": running[:, -1], "running": running}


def test_requests_of_different_lengths_are_padded_on_the_right_and_cut_back():
    graph = MaskedSum()
    batched = BatchedGraph(graph, BatchOptions())
    feeds = [
        {"ids": np.array([[1, 2, 3]], np.int32)},
        {"ids": np.array([[4], [5]], np.int32)},
        {"ids": np.array([[0, 6, 7, 0, 8]], np.int32)},  # left padding and a gap
    ]
    answers = batched.run_together(feeds)
    assert len(graph.runs) == 1
    np.testing.assert_array_equal(
        graph.runs[0]["ids"],
        [[1, 2, 3, 0, 0], [4, 0, 0, 0, 0], [5, 0, 0, 0, 0], [0, 6, 7, 0, 8]],
    )
    for feed, answer in zip(feeds, answers, strict=True):
        alone = graph.run(feed)
        assert answer.keys() == alone.keys()
        for name, array in alone.items():
            np.testing.assert_array_equal(answer[name], array)
    batched.batcher.close()


def test_requests_of_different_lengths_share_a_key_only_where_the_graph_masks():
    graph = MaskedSum()
    masked = BatchedGraph(graph, BatchOptions())
    graph.masked_input = None
    unmasked = BatchedGraph(graph, BatchOptions())
    short, long = {"ids": np.ones((1, 2), np.int32)}, {"ids": np.ones((3, 5), np.int32)}
    assert masked.key(short) == masked.key(long)
    assert unmasked.key(short) != unmasked.key(long)
    assert unmasked.key(short) == unmasked.key({"ids": np.zeros((4, 2), np.int32)})
    masked.batcher.close()
    unmasked.batcher.close()


def test_what_is_batched_and_padded_follows_the_manifest():
    graph = MaskedSum()
    assert batchable(graph) and paddable_input(graph) == ("ids", 0)
    graph.inputs.append({"name": "keys", "dtype": "float32", "shape": [None, None]})
    assert paddable_input(graph) == (None, 0)  # another free length beside it: equal shapes only
    graph.inputs = [{"name": "ids", "dtype": "int32", "shape": [1, None]}]
    assert not batchable(graph)  # a fixed batch size


@pytest.fixture(scope="module")
def runs(exported_run, tiny_runs):
    from tests.test_tagging import TAGGING

    return {"sine": exported_run("lstm"), "tagging": TAGGING.exported(tiny_runs)}


def graphs(runs) -> dict:
    return {
        SINE: load_graph(runs["sine"] / "export", SINE),
        TAGGER: load_graph(runs["tagging"] / "export", TAGGER),
    }


def mixed_requests(runs, count: int, seed: int = 0) -> list[tuple[str, dict]]:
    """``count`` (graph, feed) pairs: sine windows of 3 lengths and 1 or 2 rows; character ids
    of 1 to 20 steps, some with padding of their own (at the end, at the start, in between)."""
    rng = np.random.default_rng(seed)
    ids = graphs(runs)[TAGGER].inputs[0]["range"][1]
    requests = []
    for index in range(count):
        rows = int(rng.integers(1, 3))
        if index % 2:
            window = rng.normal(size=(rows, int(rng.choice([8, 12, 24])), 1)).astype(np.float32)
            requests.append((SINE, {"window": window}))
        else:
            characters = rng.integers(1, ids, size=(rows, int(rng.integers(1, 21)))).astype(
                np.int32
            )
            characters[rng.random(characters.shape) < 0.1] = 0
            requests.append((TAGGER, {"ids": characters}))
    return requests


def test_real_exports_batched_give_bitwise_the_answers_sent_alone(runs):
    by_name = graphs(runs)
    assert paddable_input(by_name[SINE]) == (None, 0)  # padding a window changes a forecast
    assert paddable_input(by_name[TAGGER]) == ("ids", 0)
    requests = mixed_requests(runs, 40)
    for name, graph in by_name.items():
        batched = BatchedGraph(graph, BatchOptions())
        feeds = [feed for graph_name, feed in requests if graph_name == name]
        by_key = {}
        for feed in feeds:
            by_key.setdefault(batched.key(feed), []).append(feed)
        assert max(map(len, by_key.values())) > 1
        for together in by_key.values():
            for feed, answer in zip(together, batched.run_together(together), strict=True):
                alone = graph.run(feed)
                assert answer.keys() == alone.keys()
                for output, array in alone.items():
                    np.testing.assert_array_equal(answer[output], array)
        batched.batcher.close()


def test_a_batch_of_requests_counts_as_one_execution_of_all_their_rows(runs):
    """The metrics count a graph's executions where its session runs: three concurrent
    requests of 1, 2 and 1 rows batched together are one execution of 4 rows."""
    from tests.test_server_metrics import samples, scrape

    registry, _ = load_runs([runs["tagging"]])
    metrics = Metrics(registry)
    served = registry.find(TAGGER)
    alone = graphs(runs)[TAGGER]
    ids = alone.inputs[0]["range"][1]
    rng = np.random.default_rng(3)
    feeds = [{"ids": rng.integers(1, ids, size=shape).astype(np.int32)} for shape in SHAPES]
    # a ten-minute delay: the batch runs once it holds its 4 rows, and not before
    batchers = GraphBatchers([served], BatchOptions(4, 600_000_000), threads=1)
    with ThreadPoolExecutor(len(feeds)) as pool:
        answers = list(pool.map(served.predict, feeds))
    batchers.close()
    for feed, answer in zip(feeds, answers, strict=True):
        np.testing.assert_array_equal(answer["tag_logits"], alone.run(feed)["tag_logits"])
    labels = ("model", "version")
    text = scrape(metrics)
    assert samples(text, "nv_inference_exec_count", labels) == {(TAGGER, "1"): 1}
    assert samples(text, "nv_inference_count", labels) == {(TAGGER, "1"): 4}
    served.predict(feeds[0])  # batching off: the request's own execution
    text = scrape(metrics)
    assert samples(text, "nv_inference_exec_count", labels) == {(TAGGER, "1"): 2}
    assert samples(text, "nv_inference_count", labels) == {(TAGGER, "1"): 5}


WORDS = ["the", "big", "dog", "runs", "zebra"]  # "zebra" is outside the vocabulary


def task_requests(runs, count: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """``count`` (task model, input) pairs: tagging texts of 1 to 12 words; sine windows of
    3 lengths."""
    rng = np.random.default_rng(seed)
    requests = []
    for index in range(count):
        if index % 2:
            window = rng.normal(size=(1, int(rng.choice([8, 12, 24])))).astype(np.float32)
            requests.append(("sine", window))
        else:
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 13))))
            requests.append(("tagging", np.array([text.encode()], dtype=object)))
    return requests


def alone(runs, model: str, value: np.ndarray) -> dict[str, list]:
    """What ``serving.predict``'s runtime answers for one text or window, graphs unbatched."""
    if model == "sine":
        return forecast(graphs(runs)[SINE], value[0])
    tagger = graphs(runs)[TAGGER]
    vocab = tagger.export_dir / tagger.runtime["vocab"]
    items, tags, unknown = tag(tagger, Vocabulary.load(vocab), load_tags(vocab), value[0].decode())
    return {"items": items, "tags": tags, "unknown": unknown}


def test_a_task_models_calls_of_its_graph_join_the_graphs_batch(runs):
    """Four tagging texts sent at once run as one `tagger` execution of four rows; two sine
    forecasts of equal windows run every step together (each execution two rows)."""
    from tests.test_server_metrics import samples, scrape

    registry, _ = load_models([runs["tagging"], runs["sine"]])
    metrics = Metrics(registry)
    # ten-minute delays: a batch runs once it holds its rows, and not before
    batchers = [
        GraphBatchers([registry.find(TAGGER)], BatchOptions(4, 600_000_000), threads=1),
        GraphBatchers([registry.find(SINE)], BatchOptions(2, 600_000_000), threads=1),
    ]
    for model in registry.tasks.values():
        model.start_batching(BatchOptions())
    texts = ["the dog", "the big dog runs", "zebra", "dog runs the dog"]
    windows = [np.full((1, 10), value, np.float32) for value in (0.1, -0.4)]
    requests = [("tagging", np.array([text.encode()], dtype=object)) for text in texts]
    requests += [("sine", window) for window in windows]
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(lambda r: infer_task(registry, *r), requests))
    for each in batchers:
        each.close()
    for (model, value), answer in zip(requests, answers, strict=True):
        assert answer == alone(runs, model, value)
    labels = ("model", "version")
    executions = samples(scrape(metrics), "nv_inference_exec_count", labels)
    rows = samples(scrape(metrics), "nv_inference_count", labels)
    assert (executions[(TAGGER, "1")], rows[(TAGGER, "1")]) == (1, 4)
    assert rows[(SINE, "1")] == 2 * executions[(SINE, "1")] > 0


def infer_task(registry, model: str, value: np.ndarray) -> dict[str, list]:
    """A task model's answer for one text or window, in-process."""
    name = "window" if model == "sine" else "text"
    return first_row(model, registry.tasks[model].infer({name: value}, {}))


def first_row(model: str, outputs: dict[str, np.ndarray]) -> dict[str, list]:
    """A task model's outputs for its first text or window as ``alone`` gives them (texts'
    lists without their padding)."""
    if model == "sine":
        return {name: array[0].tolist() for name, array in outputs.items()}
    return {name: [value for value in array[0] if value != ""] for name, array in outputs.items()}


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    log = tmp_path_factory.mktemp("batching") / "stderr.log"
    # one worker: a pool thread waiting for its batch must never block the batch
    flags = ["--workers", "1", "--max-queue-delay-us", "20000"]
    with serve_without_tensorflow(
        "--run", runs["sine"], "--run", runs["tagging"], *flags, log=log
    ) as s:
        yield s


def ask(server, protocol: str, name: str, feed: dict) -> dict[str, np.ndarray]:
    """The server's outputs for ``feed`` over ``protocol``: "rest", "http" or "grpc"."""
    if protocol == "rest":
        status, answer = post(
            server,
            f"/v1/models/{name}:predict",
            {"inputs": {key: value.tolist() for key, value in feed.items()}},
        )
        assert status == 200, answer
        outputs = answer["outputs"]
        return outputs if isinstance(outputs, dict) else {"tag_logits": outputs}
    triton = triton_http if protocol == "http" else triton_grpc
    client = triton.InferenceServerClient(server.http if protocol == "http" else server.grpc)
    inputs = []
    for key, value in feed.items():
        tensor = triton.InferInput(key, list(value.shape), "FP32" if key == "window" else "INT32")
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    result = client.infer(name, inputs)
    names = [
        output["name"]
        for output in client.get_model_metadata(name, **grpc_json(protocol))["outputs"]
    ]
    return {output: result.as_numpy(output) for output in names}


def grpc_json(protocol: str) -> dict:
    return {"as_json": True} if protocol == "grpc" else {}


def test_concurrent_mixed_length_requests_get_the_answers_they_get_alone(server, runs):
    by_name = graphs(runs)
    requests = mixed_requests(runs, 96, seed=1)
    protocols = ("rest", "http", "grpc")

    def send(index: int) -> dict[str, np.ndarray]:
        name, feed = requests[index]
        return ask(server, protocols[index % 3], name, feed)

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(send, range(len(requests))))
    for (name, feed), answer in zip(requests, answers, strict=True):
        alone = by_name[name].run(feed)
        assert answer.keys() == alone.keys()
        for output, array in alone.items():
            np.testing.assert_array_equal(np.asarray(answer[output], np.float32), array)


def test_concurrent_task_requests_get_the_answers_they_get_alone(server, runs):
    from tests.test_server_tasks import triton_infer

    requests = task_requests(runs, 48, seed=4)
    protocols = ("rest", "http", "grpc")

    def send(index: int) -> dict[str, list]:
        model, value = requests[index]
        protocol = protocols[index % 3]
        if protocol == "rest":
            rows = value.tolist() if model == "sine" else [value[0].decode()]
            status, answer = post(server, f"/v1/models/{model}:predict", {"instances": rows})
            assert status == 200, answer
            return answer["predictions"][0]
        datatype = "FP32" if model == "sine" else "BYTES"
        name = "window" if model == "sine" else "text"
        return first_row(model, triton_infer(server, protocol, model, {name: (datatype, value)}))

    with ThreadPoolExecutor(24) as pool:
        answers = list(pool.map(send, range(len(requests))))
    for (model, value), answer in zip(requests, answers, strict=True):
        assert answer == alone(runs, model, value)


def test_bad_requests_among_concurrent_ones_fail_alone_with_a_4xx(server, runs):
    by_name = graphs(runs)
    ids = by_name[TAGGER].inputs[0]["range"][1]
    good = [
        (name, json.dumps({"inputs": {key: value.tolist() for key, value in feed.items()}}), feed)
        for name, feed in mixed_requests(runs, 24, seed=2)
    ]
    bad = [
        (SINE, '{"instances": [[[0.5], [NaN]]]}', "NaN"),
        (SINE, json.dumps({"instances": np.ones((1, 5, 2)).tolist()}), "size 1 on axis 2"),
        (TAGGER, json.dumps({"instances": [[1, ids, 2]]}), f"holds {ids}"),
        (TAGGER, json.dumps({"instances": [[1, -1]]}), "holds -1"),
    ]
    sent = good[:5] + bad[:2] + good[5:17] + bad[2:] + good[17:]

    def send(item) -> tuple[int, dict]:
        name, body, _ = item
        return request(server, "POST", f"/v1/models/{name}:predict", body)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(send, sent))
    for (name, _, expected), (status, answer) in zip(sent, answers, strict=True):
        if isinstance(expected, str):
            assert status == 400 and expected in answer["error"], answer
            continue
        assert status == 200, answer
        outputs = answer["outputs"] if name == SINE else {"tag_logits": answer["outputs"]}
        for output, array in by_name[name].run(expected).items():
            np.testing.assert_array_equal(np.asarray(outputs[output], np.float32), array)


def test_sigterm_runs_the_requests_waiting_for_their_batch_then_exits(runs, tmp_path):
    windows = [np.full((1, 6, 1), value, np.float32) for value in (0.1, 0.2, 0.3)]
    flags = ["--max-queue-delay-us", "60000000", "--max-batch-size", "64"]  # a minute's wait
    with serve_without_tensorflow("--run", runs["sine"], *flags, log=tmp_path / "log") as served:
        host, port = served.http.split(":")
        connections = []
        for window in windows:
            body = json.dumps({"instances": window.tolist()}).encode()
            connection = socket.create_connection((host, int(port)), timeout=60)
            connection.sendall(
                f"POST /v1/models/{SINE}:predict HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            connections.append(connection)
        # A request on a later connection: once it is answered, the server has read the
        # others (its event loop takes ready sockets in order), which now wait for the delay.
        assert request(served, "GET", f"/v1/models/{SINE}")[0] == 200
        served.process.terminate()
        answers = [read_until_closed(connection) for connection in connections]
        status, stdout, log = served.exited()
    assert "answering the 3 HTTP request(s) in flight" in log
    expected = load_graph(runs["sine"] / "export", SINE)
    for window, answer in zip(windows, answers, strict=True):
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        predictions = json.loads(answer.split(b"\r\n\r\n", 1)[1])["predictions"]
        np.testing.assert_array_equal(
            np.asarray(predictions[0]["next_value"], np.float32),
            expected.run({"window": window})["next_value"][0],
        )
    assert status == 0 and "stopped on SIGTERM" in stdout


def test_batching_flags_are_checked(runs):
    for flag, value in (("--max-batch-size", "0"), ("--max-queue-delay-us", "-1")):
        result = run_without_tensorflow("serving.server", "--run", runs["sine"], flag, value)
        assert_user_error(result.returncode, result.stderr, flag)
