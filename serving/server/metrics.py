"""The server's Prometheus metrics, served in Prometheus's text format at ``GET /metrics``:
inference requests by model, protocol and outcome, their latency and the time they waited
for a worker thread, graph executions and their batch sizes, open sequences and streams.

Triton's metric names where Triton has one (``nv_inference_*`` with the labels ``model`` and
``version``), so that dashboards and alerts written for Triton read ours. Those are read at
scrape time from our own families (``keras_rnn_*``) and written untyped: Prometheus's client
writes every counter's name with ``_total`` added, which Triton's names do not have. Each
server keeps its metrics in a ``CollectorRegistry`` of its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.core import UnknownMetricFamily

from serving.server import open_inference, tfserving_rest
from serving.server.models import VERSION, Registry, RequestError

REST, V2_HTTP, V2_GRPC = "rest", "v2-http", "v2-grpc"  # the ``protocol`` label's values
# Of the /v1 and /v2 routes (generate: Triton's generate extension); the others are not counted.
INFERENCE_ACTIONS = ("predict", "infer", "generate", "generate_stream")
# Seconds: a batch-1 sine forecast is answered in about a millisecond, a long generation in
# seconds.
SECONDS_BUCKETS = (
    *(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05),
    *(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass
class Timing:
    """When a request started, and how long it waited for a worker thread (None until a
    worker starts it)."""

    started: float
    waited: float | None = None


_http_timing: ContextVar[Timing | None] = ContextVar("http_timing", default=None)
_worker = threading.local()


def http_timing() -> Timing:
    """The ``Timing`` of the HTTP request being handled, starting now; ``TimedPool`` notes in
    it how long the request's first task waited."""
    timing = Timing(time.perf_counter())
    _http_timing.set(timing)
    return timing


def worker_timing() -> Timing | None:
    """The ``Timing`` of the task this thread runs for a ``TimedPool`` (None in other
    threads)."""
    return getattr(_worker, "timing", None)


class TimedPool(ThreadPoolExecutor):
    """A thread pool that notes how long each task waited for a thread. A task submitted while
    an HTTP request is handled (aiohttp runs the handler in the request's asyncio task) notes
    it in that request's ``Timing``; any other task (grpcio submits each call from a thread of
    its own) gets a ``Timing`` that starts when it is submitted."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        submitted = time.perf_counter()
        timing = _http_timing.get() or Timing(submitted)

        def timed() -> Any:
            if timing.waited is None:  # the request's first task: its wait before inference
                timing.waited = time.perf_counter() - submitted
            _worker.timing = timing
            try:
                return fn(*args, **kwargs)
            finally:
                del _worker.timing

        return super().submit(timed)


class TritonCounter:
    """One of Triton's counters, read at scrape time from the ``sample`` samples (``_count``
    or ``_sum`` of a histogram, ``_total`` of a counter) of ``source`` with ``labels``, times
    ``scale``: at no cost per request, under Triton's exact name."""

    def __init__(
        self,
        name: str,
        documentation: str,
        source: Histogram | Counter,
        labels: tuple[str, ...],
        sample: str,
        scale: float = 1,
    ):
        self.name, self.documentation, self.source = name, documentation, source
        self.labels, self.sample, self.scale = labels, sample, scale

    def collect(self) -> Iterator[UnknownMetricFamily]:
        family = UnknownMetricFamily(self.name, self.documentation, labels=self.labels)
        for source in self.source.collect():
            for sample in source.samples:
                if sample.name == source.name + self.sample:
                    values = [sample.labels[label] for label in self.labels]
                    family.add_metric(values, sample.value * self.scale)
        yield family


class Metrics:
    """One server's metric families, in ``registry``. Model labels name served models only: a
    request for a model not served counts under ``model=""``, one for a version not served
    under ``version=""``."""

    def __init__(self, served: Registry):
        """Metrics of the graphs and task models ``served``; every run of a graph's session
        counts one execution of its batch rows under the graph's name, whoever runs it (a
        request for the graph, or a task model): the graph's ``executed`` is the histogram
        child of that name, bound once."""
        self.models = frozenset([*served.graphs, *served.tasks])
        self.registry = CollectorRegistry()
        request, model = ("model", "version", "protocol"), ("model", "version")

        def family(kind: type, name: str, documentation: str, labels: tuple, **options: Any):
            return kind(name, documentation, labels, registry=self.registry, **options)

        self.request_seconds = family(
            Histogram,
            "keras_rnn_request_duration_seconds",
            "Time of each inference request answered, from arrival to answer",
            request,
            buckets=SECONDS_BUCKETS,
        )
        self.queue_seconds = family(
            Histogram,
            "keras_rnn_queue_duration_seconds",
            "Time each inference request answered waited for a worker thread",
            request,
            buckets=SECONDS_BUCKETS,
        )
        self.failure = family(
            Counter,
            "keras_rnn_request_failures",
            "Inference requests refused or failed, by HTTP status (gRPC: the status its code "
            "stands for)",
            (*request, "code"),
        )
        self.batch_size = family(
            Histogram,
            "keras_rnn_batch_size",
            "Batch rows of each graph execution",
            model,
            buckets=BATCH_BUCKETS,
        )
        self.open_sequences = family(
            Gauge, "keras_rnn_open_sequences", "Sequences whose state the server keeps", model
        )
        self.open_streams = family(
            Gauge, "keras_rnn_open_streams", "Responses streaming now", model
        )
        for totals in (
            TritonCounter(
                "nv_inference_request_success",
                "Inference requests answered",
                self.request_seconds,
                request,
                "_count",
            ),
            TritonCounter(
                "nv_inference_request_failure",
                "Inference requests refused or failed, by HTTP status (gRPC: the status its "
                "code stands for)",
                self.failure,
                (*request, "code"),
                "_total",
            ),
            TritonCounter(
                "nv_inference_request_duration_us",
                "Cumulative time of the inference requests answered, from arrival to answer, "
                "in microseconds",
                self.request_seconds,
                request,
                "_sum",
                1e6,
            ),
            TritonCounter(
                "nv_inference_queue_duration_us",
                "Cumulative time the inference requests answered waited for a worker thread, "
                "in microseconds",
                self.queue_seconds,
                request,
                "_sum",
                1e6,
            ),
            TritonCounter(
                "nv_inference_exec_count",
                "Graph executions (a batch counts once)",
                self.batch_size,
                model,
                "_count",
            ),
            TritonCounter(
                "nv_inference_count",
                "Batch rows inferred (a batch of n counts n)",
                self.batch_size,
                model,
                "_sum",
            ),
        ):
            self.registry.register(totals)
        for graph in served.graphs.values():
            graph.graph.executed = self.batch_size.labels(graph.name, VERSION).observe

    def handler(self) -> Callable:
        """The aiohttp handler of ``GET /metrics``."""
        return make_aiohttp_handler(self.registry)

    def answered(
        self, protocol: str, model: str, version: str | None, status: int, timing: Timing
    ) -> None:
        """Count an inference request that ``protocol`` answered with the HTTP ``status``; an
        answer's latency and queue time go to the durations."""
        served = model in self.models
        labels = (
            model if served else "",
            VERSION if served and version in (None, "", VERSION) else "",
            protocol,
        )
        if status >= 400:
            self.failure.labels(*labels, str(status)).inc()
            return
        self.request_seconds.labels(*labels).observe(time.perf_counter() - timing.started)
        if timing.waited is not None:
            self.queue_seconds.labels(*labels).observe(timing.waited)

    def http_answered(self, path: str, status: int, timing: Timing) -> None:
        """Count an HTTP request for ``path`` answered with ``status`` if it asked for an
        inference (TF Serving's ``:predict``, the Open Inference Protocol's ``infer``, the
        generate extension's ``generate`` and ``generate_stream``)."""
        protocol, route = (
            (REST, tfserving_rest.route)
            if path.startswith("/v1/")
            else (V2_HTTP, open_inference.route)
        )
        try:
            model, version, action = route(path)
        except RequestError:  # not a model's route
            return
        if action in INFERENCE_ACTIONS:
            self.answered(protocol, model, version, status, timing)

    def grpc_answered(self, model: str, version: str, status: int, started: float) -> None:
        """Count a ``ModelInfer`` call answered with the HTTP ``status`` its code stands for.
        It started when grpcio handed it to ``TimedPool`` (another pool: at ``started``)."""
        timing = worker_timing() or Timing(started)
        self.answered(V2_GRPC, model, version, status, timing)

    def set_open_sequences(self, model: str, count: int) -> None:
        """Set how many sequences of ``model`` the server keeps; the sequence store calls this
        whenever that number changes."""
        self.open_sequences.labels(model, VERSION).set(count)

    @contextmanager
    def stream(self, model: str) -> Iterator[None]:
        """Count a response of ``model`` as streaming while the block runs."""
        streams = self.open_streams.labels(model, VERSION)
        streams.inc()
        try:
            yield
        finally:
            streams.dec()
