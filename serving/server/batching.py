"""Dynamic batching that never changes an answer: concurrent requests for one graph run as
one onnxruntime call, and each gets what it would get alone.

``Batcher`` is the model-independent part, as Triton's dynamic batcher: a queue per model and
threads of its own that take requests of one kind (one key) from it, up to a maximum batch
size in rows or until the oldest has waited a maximum delay, run them with one call of a run
function over the list, and complete each request's future. ``BatchedGraph`` is that for an
exported graph: requests of the same shapes stack on the batch axis; where the graph masks
its one variable-length input (the manifest's ``masked_input``), requests of different lengths
are padded on the right with the pad value and each answer is cut back to its length. The
export's masks make that exact: a masked step is skipped as Keras skips it, wherever it is
(measured here: bitwise the answers sent alone, LSTM and GRU, 4 to 64 units, with left
padding and gaps in the mix). A graph without such a mask is batched across equal shapes only:
padding a sine window changes its forecast.

No pool size can deadlock it: a thread waiting for its answer waits on a call that is running
(which waits for nothing) or on the batcher's own threads, which start a call as soon as one
is free and never wait for a thread of the server's pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from serving.runtime.graph import ExportedGraph

if TYPE_CHECKING:
    from serving.server.models import ServedGraph

Request = TypeVar("Request")
Answer = TypeVar("Answer")


@dataclass(frozen=True)
class BatchOptions:
    """Triton's dynamic batcher settings (docs/serving.md says why these defaults)."""

    # The most rows one call runs (a larger request runs alone). Measured on the sine
    # forecaster (LSTM, 32 units, 24 steps): a row costs 21 us alone, 4.5 us in a batch of 16,
    # 3.9 us in 32 and no less beyond, while far larger calls fall off the cache (5x a row).
    max_batch_size: int = 32
    # How long the oldest request may wait for others. 0, Triton's default, adds no latency
    # to a lone request and still batches under load: what queues while every call is busy
    # goes out as the next batch.
    max_queue_delay_us: int = 0


@dataclass
class _Queued(Generic[Request, Answer]):
    request: Request
    key: Hashable
    rows: int
    enqueued: float  # time.monotonic()
    future: Future = field(default_factory=Future)


class Batcher(Generic[Request, Answer]):
    """A queue of requests for one model, run in batches by at most ``threads`` calls at once.

    ``run(requests)`` returns one answer per request, in order. Requests batch together only
    with requests of the same ``key``. When ``run`` raises on a batch, each of its requests is
    run again alone, so a request that fails fails alone and never its batchmates.

    The batcher's own ``threads`` threads run what is queued. A caller of ``run`` that finds
    the queue empty and a call free runs its batch in its own thread instead: alone, or with
    what joins it within the delay. So a lone request costs no hand-over between threads, and
    batches form when every call is busy, which is when batching pays.
    """

    def __init__(
        self,
        name: str,
        run: Callable[[list[Request]], list[Answer]],
        options: BatchOptions,
        threads: int = 1,
    ):
        self.name = name
        self.options = options
        self._run = run
        self._queue: list[_Queued] = []
        self._changed = threading.Condition()  # guards the queue and the state below
        self._free = threads  # calls that may start
        self._collecting = False  # a thread is forming a batch (at most one at a time)
        self._flushing = False  # stop waiting for the delay: the server is stopping
        self._closed = False
        self._threads = [
            threading.Thread(target=self._serve, name=f"batch-{name}-{index}", daemon=True)
            for index in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def waiting(self) -> int:
        """How many requests are queued."""
        with self._changed:
            return len(self._queue)

    def submit(self, request: Request, key: Hashable, rows: int = 1) -> Future:
        """Queue ``request`` (``rows`` rows) for the batcher's threads; its future gets its
        answer or its exception."""
        with self._changed:
            queued = self._enqueue(request, key, rows)
            self._changed.notify_all()
        return queued.future

    def run(self, request: Request, key: Hashable, rows: int = 1) -> Answer:
        """``request``'s answer (its exception raised), in this thread when the queue is
        empty and a call is free, else from the batcher's threads."""
        with self._changed:
            queued = self._enqueue(request, key, rows)
            leads = len(self._queue) == 1 and self._can_start()
            if leads:
                self._start()
            else:
                self._changed.notify_all()
        if leads:
            self._run_batch()
        return queued.future.result()

    def flush(self) -> None:
        """Run what is queued now and stop waiting for the delay from here on."""
        with self._changed:
            self._flushing = True
            self._changed.notify_all()

    def close(self) -> None:
        """Run every queued request, then stop the threads; ``submit`` refuses from here on."""
        with self._changed:
            self._flushing = self._closed = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join()

    def _enqueue(self, request: Request, key: Hashable, rows: int) -> _Queued:
        if self._closed:
            raise RuntimeError(f"the batcher of {self.name} is closed")
        queued = _Queued(request, key, rows, time.monotonic())
        self._queue.append(queued)
        return queued

    def _can_start(self) -> bool:
        return bool(self._queue) and not self._collecting and self._free > 0

    def _start(self) -> None:
        """Take a call and the right to form the next batch (holding ``_changed``)."""
        self._free -= 1
        self._collecting = True

    def _serve(self) -> None:
        while True:
            with self._changed:
                while not self._can_start():
                    if self._closed and not self._queue:
                        return
                    self._changed.wait()
                self._start()
            self._run_batch()

    def _run_batch(self) -> None:
        """Form the next batch, run it, and give its call back (after ``_start``)."""
        with self._changed:
            batch = self._next_batch()
            self._collecting = False
            if self._queue:
                self._changed.notify_all()
        try:
            self._execute(batch)
        finally:
            with self._changed:
                self._free += 1
                if self._queue:
                    self._changed.notify_all()

    def _next_batch(self) -> list[_Queued]:
        """The oldest request and those that join it, once the batch is full or the oldest
        has waited the delay, taken from the queue (holding ``_changed``); cancelled ones
        are left out. Requests arriving meanwhile join this batch: no other thread forms one."""
        deadline = self._queue[0].enqueued + self.options.max_queue_delay_us / 1e6
        while True:
            batch, full = self._fitting()
            remaining = deadline - time.monotonic()
            if full or remaining <= 0 or self._flushing:
                break
            self._changed.wait(remaining)
        taken = set(map(id, batch))
        self._queue = [queued for queued in self._queue if id(queued) not in taken]
        return [queued for queued in batch if queued.future.set_running_or_notify_cancel()]

    def _fitting(self) -> tuple[list[_Queued], bool]:
        """The oldest request and the queued ones of its key that fit beside it, in order,
        and whether the batch is full (waiting longer cannot grow it)."""
        first, *others = self._queue
        batch, rows = [first], first.rows
        for queued in others:
            if queued.key != first.key:
                continue
            if rows + queued.rows > self.options.max_batch_size:
                return batch, True
            batch.append(queued)
            rows += queued.rows
        return batch, rows >= self.options.max_batch_size

    def _execute(self, batch: list[_Queued]) -> None:
        if not batch:
            return
        try:
            answers = self._run([queued.request for queued in batch])
            if len(answers) != len(batch):
                raise RuntimeError(f"{len(answers)} answers for {len(batch)} requests")
        except Exception as error:
            if len(batch) == 1:
                batch[0].future.set_exception(error)
                return
            for queued in batch:
                self._execute([queued])
            return
        for queued, answer in zip(batch, answers, strict=True):
            queued.future.set_result(answer)


Feed = dict[str, np.ndarray]


class BatchedGraph:
    """An exported graph's batcher: ``run(feed)`` takes a checked feed (``checked_feed``)
    and returns what ``graph.run(feed)`` would, after running it together with the feeds of
    concurrent requests."""

    def __init__(self, graph: ExportedGraph, options: BatchOptions, threads: int = 1):
        self.graph = graph
        self.padded, self.pad_value = paddable_input(graph)
        # the outputs with a step per input step, cut back to each request's length
        self.per_step = (
            {spec["name"] for spec in graph.outputs if _free_steps(spec)} if self.padded else set()
        )
        self.batcher: Batcher[Feed, Feed] = Batcher(graph.name, self.run_together, options, threads)

    def run(self, feed: Feed) -> Feed:
        """The graph's outputs for ``feed``; blocks until its batch has run."""
        return self.batcher.run(feed, self.key(feed), len(next(iter(feed.values()))))

    def key(self, feed: Feed) -> Hashable:
        """What feeds batched together share: each input's shape after the batch axis, but
        for the steps of the input padded (dtypes are the manifest's in every checked feed)."""
        return tuple(
            sorted(
                (name, array.shape[2:] if name == self.padded else array.shape[1:])
                for name, array in feed.items()
            )
        )

    def run_together(self, feeds: list[Feed]) -> list[Feed]:
        """Each feed's outputs from one run of the graph on them all (feeds of one key)."""
        if len(feeds) == 1:
            return [self.graph.run(feeds[0])]
        stacked = {
            name: np.concatenate([feed[name] for feed in feeds])
            for name in feeds[0]
            if name != self.padded
        }
        if self.padded:
            stacked[self.padded] = self._padded([feed[self.padded] for feed in feeds])
        outputs = self.graph.run(stacked)
        self._check_split(outputs, stacked)
        bounds = np.cumsum([0, *(len(next(iter(feed.values()))) for feed in feeds)])
        lengths = [feed[self.padded].shape[1] if self.padded else None for feed in feeds]
        return [
            {
                name: array[start:stop, :length] if name in self.per_step else array[start:stop]
                for name, array in outputs.items()
            }
            for start, stop, length in zip(bounds[:-1], bounds[1:], lengths, strict=True)
        ]

    def _padded(self, arrays: list[np.ndarray]) -> np.ndarray:
        """``arrays`` (rows, steps, ...) stacked, each padded on the right to the longest."""
        shape = (sum(map(len, arrays)), max(array.shape[1] for array in arrays))
        stacked = np.full(shape + arrays[0].shape[2:], self.pad_value, arrays[0].dtype)
        start = 0
        for array in arrays:
            stacked[start : start + len(array), : array.shape[1]] = array
            start += len(array)
        return stacked

    def _check_split(self, outputs: Feed, stacked: Feed) -> None:
        """Raise unless every output has a row per input row and, where the batch was
        padded, every per-step output a step per input step (the batch then runs alone)."""
        rows = len(next(iter(stacked.values())))
        steps = stacked[self.padded].shape[1] if self.padded else None
        for name, array in outputs.items():
            if len(array) != rows or (name in self.per_step and array.shape[1] != steps):
                raise RuntimeError(
                    f"graph {self.graph.name}: output {name} of shape {array.shape} does not "
                    f"split into the batch's {rows} rows of {steps} steps"
                )


def batchable(graph: ExportedGraph) -> bool:
    """Whether every input and output of ``graph`` has a free batch axis first."""
    return all(spec["shape"][:1] == [None] for spec in (*graph.inputs, *graph.outputs))


def paddable_input(graph: ExportedGraph) -> tuple[str | None, float]:
    """The input that requests of different lengths may be padded on (right padding with the
    pad value is exact through the export's masks), and its pad value; None where padding
    could change an answer: no masked input, or another input of free size beside it."""
    masked = graph.masked_input
    if masked is None:
        return None, 0
    specs = {spec["name"]: spec for spec in graph.inputs}
    others_fixed = all(
        None not in spec["shape"][1:] for name, spec in specs.items() if name != masked["name"]
    )
    if not _free_steps(specs[masked["name"]]) or not others_fixed:
        return None, 0
    return masked["name"], masked["pad_value"]


def _free_steps(spec: dict[str, Any]) -> bool:
    """Whether a tensor's axis 1 (its steps) has a free size."""
    return len(spec["shape"]) >= 2 and spec["shape"][1] is None


class GraphBatchers:
    """While a server runs: a ``BatchedGraph`` as the ``batched`` of each batchable graph
    among ``served`` (``ServedGraph``s), each with ``threads`` threads; none with ``options``
    None (batching off)."""

    def __init__(self, served: Iterable[ServedGraph], options: BatchOptions | None, threads: int):
        self.graphs = [each.graph for each in served if options and batchable(each.graph)]
        for graph in self.graphs:
            graph.batched = BatchedGraph(graph, options, threads)

    def flush(self) -> None:
        """Run what is queued now, without waiting for the delay from here on (stopping)."""
        for graph in self.graphs:
            graph.batched.batcher.flush()

    def close(self) -> None:
        """Run what is queued, stop the threads, and let the graphs run alone again."""
        for graph in self.graphs:
            graph.batched.batcher.close()
            graph.batched = None
