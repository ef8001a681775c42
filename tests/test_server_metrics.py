"""GET /metrics: after a mixed load over the three protocols (answers, 400s and 404s, and
requests that are not inferences) the server's Prometheus metrics count exactly what was sent,
by model, version, protocol and status, under Triton's names; the histograms hold one
observation per answer; the thread pool notes how long each task waited for a thread; each
server's metrics live in a registry of their own."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from serving.clients import connect, forecast_with
from serving.runtime.graph import manifest_entry
from serving.runtime.sine import forecast
from serving.server.metrics import (
    V2_GRPC,
    V2_HTTP,
    Metrics,
    TimedPool,
    Timing,
    http_timing,
    worker_timing,
)
from serving.server.models import ObservedGraph, Registry
from tests.conftest import serve_without_tensorflow
from tests.test_server import BATCH, SINE, WINDOW

REQUEST = ("model", "version", "protocol")


def samples(text: str, name: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
    """The values of the samples called ``name`` in a scrape, by their ``labels``' values."""
    return {
        tuple(sample.labels[label] for label in labels): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def scrape(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def scraped(server) -> str:
    """A running server's ``GET /metrics``."""
    connection = http.client.HTTPConnection(server.http, timeout=30)
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/plain")
    text = response.read().decode()
    connection.close()
    return text


def increase(before: str, after: str, name: str, labels: tuple[str, ...]) -> dict:
    """How much each series called ``name`` grew from one scrape to the next (the grown ones)."""
    old, new = samples(before, name, labels), samples(after, name, labels)
    return {key: value - old.get(key, 0) for key, value in new.items() if value != old.get(key)}


def stand_in(name: str) -> SimpleNamespace:
    """A ``ServedGraph`` as ``Metrics`` sees it: its name, and its graph to observe."""
    return SimpleNamespace(name=name, graph=SimpleNamespace())


def send(server, method: str, path: str, document=None) -> int:
    """The status of one HTTP request with a JSON body."""
    connection = http.client.HTTPConnection(server.http, timeout=30)
    connection.request(method, path, body=None if document is None else json.dumps(document))
    response = connection.getresponse()
    response.read()
    connection.close()
    return response.status


def window_input(module, array: np.ndarray, name: str = "window"):
    tensor = module.InferInput(name, list(array.shape), "FP32")
    tensor.set_data_from_numpy(array)
    return tensor


@pytest.fixture(scope="module")
def server(exported_run, tmp_path_factory):
    log = tmp_path_factory.mktemp("metrics") / "stderr.log"
    with serve_without_tensorflow("--run", exported_run("lstm"), "--quiet", log=log) as served:
        yield served


def test_a_scrape_counts_a_mixed_load_exactly(server):
    predict = f"/v1/models/{SINE}:predict"
    for window in (WINDOW, WINDOW, BATCH):  # REST answers, 7 rows
        assert send(server, "POST", predict, {"instances": window.tolist()}) == 200
    assert send(server, "POST", predict, {"instances": [[[0.1, 0.2]]]}) == 400
    assert send(server, "POST", f"/v1/models/{SINE}/versions/2:predict", {"instances": []}) == 404
    assert send(server, "GET", f"/v1/models/{SINE}") == 200  # status: not an inference
    http_client = triton_http.InferenceServerClient(server.http)
    for window in (BATCH, WINDOW):  # Open Inference Protocol HTTP answers, 6 rows
        http_client.infer(SINE, [window_input(triton_http, window)])
    with pytest.raises(InferenceServerException):  # 400
        http_client.infer(SINE, [window_input(triton_http, WINDOW, "windows")])
    with pytest.raises(InferenceServerException):  # 404
        http_client.infer("nope", [window_input(triton_http, WINDOW)])
    assert http_client.is_model_ready(SINE) and http_client.get_model_metadata(SINE)
    grpc_client = triton_grpc.InferenceServerClient(server.grpc)
    for window in (WINDOW, WINDOW):  # Open Inference Protocol gRPC answers, 2 rows
        grpc_client.infer(SINE, [window_input(triton_grpc, window)])
    with pytest.raises(InferenceServerException, match="INVALID_ARGUMENT"):
        grpc_client.infer(SINE, [window_input(triton_grpc, WINDOW[:, :, :0])])
    with pytest.raises(InferenceServerException, match="NOT_FOUND"):
        grpc_client.infer("nope", [window_input(triton_grpc, WINDOW)])
    assert grpc_client.is_model_ready(SINE) and grpc_client.get_model_metadata(SINE)

    text = scraped(server)
    answered = {(SINE, "1", "rest"): 3, (SINE, "1", V2_HTTP): 2, (SINE, "1", V2_GRPC): 2}
    for triton_name in ("nv_inference_request_success", "nv_inference_request_failure"):
        assert f"\n# TYPE {triton_name} untyped\n" in text  # Triton's name, no _total
    assert samples(text, "nv_inference_request_success", REQUEST) == answered
    assert samples(text, "nv_inference_request_failure", (*REQUEST, "code")) == {
        (SINE, "1", "rest", "400"): 1,
        (SINE, "", "rest", "404"): 1,  # a version not served
        (SINE, "1", V2_HTTP, "400"): 1,
        ("", "", V2_HTTP, "404"): 1,  # a model not served
        (SINE, "1", V2_GRPC, "400"): 1,
        ("", "", V2_GRPC, "404"): 1,
    }
    for histogram, counter in [
        ("keras_rnn_request_duration_seconds", "nv_inference_request_duration_us"),
        ("keras_rnn_queue_duration_seconds", "nv_inference_queue_duration_us"),
    ]:
        assert samples(text, f"{histogram}_count", REQUEST) == answered
        seconds = samples(text, f"{histogram}_sum", REQUEST)
        microseconds = samples(text, counter, REQUEST)
        assert seconds.keys() == microseconds.keys() == answered.keys()
        for labels, total in seconds.items():
            assert total > 0
            assert microseconds[labels] == pytest.approx(total * 1e6)
        every = samples(text, f"{histogram}_bucket", (*REQUEST, "le"))
        assert {labels[:3]: every[(*labels[:3], "+Inf")] for labels in every} == answered
    executions = {(SINE, "1"): 7}  # one per answer: nothing is batched
    assert samples(text, "nv_inference_exec_count", ("model", "version")) == executions
    assert samples(text, "nv_inference_count", ("model", "version")) == {(SINE, "1"): 15}
    assert samples(text, "keras_rnn_batch_size_count", ("model", "version")) == executions
    assert samples(text, "keras_rnn_batch_size_sum", ("model", "version")) == {(SINE, "1"): 15}
    assert "_created" not in text  # the server turns those series off


def test_a_task_model_counts_under_its_name_and_its_graph_runs_under_the_graph(
    server, exported_run
):
    """Requests of the task model sine count under sine; each run of sine_forecaster that
    they make (a forecast, then one per recursive step) is one execution of that graph, as
    many as ``forecast`` makes in this process."""
    windows = BATCH[:2, :, 0]  # two windows, a row each
    runs = []
    export = exported_run("lstm") / "export"
    graph = ObservedGraph(export, manifest_entry(export, SINE))
    graph.executed = runs.append
    for window in windows:
        forecast(graph, window)
    before = scraped(server)
    triton_http.InferenceServerClient(server.http).infer(
        "sine", [window_input(triton_http, windows)]
    )
    forecast_with(connect(server.url), windows)  # TF Serving's REST API
    after = scraped(server)
    assert increase(before, after, "nv_inference_request_success", REQUEST) == {
        ("sine", "1", V2_HTTP): 1,
        ("sine", "1", "rest"): 1,
    }
    labels = ("model", "version")
    assert increase(before, after, "nv_inference_exec_count", labels) == {
        (SINE, "1"): 2 * len(runs)
    }
    assert increase(before, after, "nv_inference_count", labels) == {(SINE, "1"): 2 * sum(runs)}


def test_executions_sequences_and_streams_count_in_each_servers_own_registry():
    served = stand_in("lm_step")
    metrics, other = Metrics(Registry({"lm_step": served})), Metrics(Registry({}))
    served.graph.executed(3)  # what the graph calls on each run of its session
    served.graph.executed(5)
    metrics.set_open_sequences("lm_step", 4)
    metrics.set_open_sequences("lm_step", 2)
    labels = ("model", "version")
    with metrics.stream("lm_step"), metrics.stream("lm_step"):
        assert samples(scrape(metrics), "keras_rnn_open_streams", labels) == {("lm_step", "1"): 2}
    text = scrape(metrics)
    assert samples(text, "keras_rnn_open_streams", labels) == {("lm_step", "1"): 0}
    assert samples(text, "keras_rnn_open_sequences", labels) == {("lm_step", "1"): 2}
    assert samples(text, "nv_inference_exec_count", labels) == {("lm_step", "1"): 2}
    assert samples(text, "nv_inference_count", labels) == {("lm_step", "1"): 8}
    buckets = samples(text, "keras_rnn_batch_size_bucket", ("le",))
    assert (buckets[("2.0",)], buckets[("4.0",)], buckets[("8.0",)]) == (0, 1, 2)
    assert samples(scrape(other), "nv_inference_exec_count", labels) == {}


def test_only_answers_have_durations_and_labels_name_only_served_models():
    metrics = Metrics(Registry({SINE: stand_in(SINE)}))
    timing = Timing(time.perf_counter(), waited=0.25)
    metrics.answered(V2_HTTP, SINE, "1", 200, timing)
    metrics.answered(V2_HTTP, SINE, None, 400, timing)
    metrics.answered(V2_HTTP, SINE, "7", 404, timing)
    metrics.answered(V2_HTTP, "x" * 100, "1", 404, timing)
    text = scrape(metrics)
    assert samples(text, "nv_inference_request_failure", (*REQUEST, "code")) == {
        (SINE, "1", V2_HTTP, "400"): 1,
        (SINE, "", V2_HTTP, "404"): 1,
        ("", "", V2_HTTP, "404"): 1,
    }
    assert samples(text, "keras_rnn_queue_duration_seconds_sum", REQUEST) == {
        (SINE, "1", V2_HTTP): 0.25
    }
    assert samples(text, "keras_rnn_request_duration_seconds_count", REQUEST) == {
        (SINE, "1", V2_HTTP): 1
    }


def test_the_pool_notes_how_long_each_task_waited_for_a_thread():
    """With the one thread busy, a task cannot start before the thread is freed: it waited at
    least from its submission until then."""
    with TimedPool(1) as pool:
        free = threading.Event()
        pool.submit(free.wait)
        waiting = pool.submit(worker_timing)
        time.sleep(0.05)
        freed = time.perf_counter()
        free.set()
        timing = waiting.result()
        assert timing.waited >= freed - timing.started

        async def http_request() -> tuple[Timing, Timing]:
            timing = http_timing()
            seen = await asyncio.get_running_loop().run_in_executor(pool, worker_timing)
            return timing, seen

        timing, seen = asyncio.run(http_request())
        assert seen is timing and timing.waited is not None
