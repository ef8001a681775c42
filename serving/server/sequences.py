"""Sequences whose recurrent state the server keeps, as Triton's sequence batcher with
implicit state keeps it.

A step graph (``lm_step``, ``decoder_step``: ``serving.runtime.graph.carried_states``) takes
its states as inputs and gives their next values as ``next_<state>`` outputs. A request with
the Open Inference Protocol's parameters ``sequence_id``, ``sequence_start`` and
``sequence_end`` sends only the other inputs: the server feeds the states it keeps for that
sequence, keeps the next ones, and answers the other outputs.

- ``sequence_start`` opens the sequence, or starts an open one over (as Triton does). Its
  states are those the request gives, and zeros for the others where the graph's runtime facts
  say its states start at zeros (``lm_step``); ``decoder_step`` needs the encoder's.
- A later request gives no state; ``sequence_end`` closes the sequence after its step.
- A sequence idle for ``idle_seconds`` is dropped. At most ``capacity`` are open: another
  start is a 429 (gRPC RESOURCE_EXHAUSTED). A step of a sequence that is not open is a 400.
- A request of a sequence whose previous request is still running is a 409 (gRPC ABORTED):
  two steps at once would have no order, and waiting would hold a worker thread.
- A refused request changes nothing, except that a start whose step the graph refuses (a bad
  input) leaves the sequence closed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.runtime.graph import IDLE_SECONDS
from serving.server.models import RequestError, ServedGraph

CAPACITY = 1000  # open sequences (an lm_step sequence of the default charlm holds ~6 KB)
LARGEST_ID = 2**64 - 1  # Triton's correlation ids are uint64 or strings
log = logging.getLogger("serving.server")


@dataclass(frozen=True)
class Control:
    """A request's sequence parameters: the sequence's id, and whether it starts or ends it."""

    id: int | str
    start: bool = False
    end: bool = False


def control(parameters: Mapping[str, Any]) -> Control | None:
    """The sequence parameters among a request's ``parameters`` (by name, as Python values);
    None for a request of no sequence (no ``sequence_id``, or Triton's 0 or ""). An id that is
    not a string or an unsigned 64-bit integer, a flag that is not a boolean, or a flag
    without an id is a 400."""
    sequence_id = parameters.get("sequence_id", 0)
    flags = {name: parameters.get(f"sequence_{name}", False) for name in ("start", "end")}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise RequestError(f"sequence_{name} must be true or false, got {value!r}")
    if isinstance(sequence_id, bool) or not (
        isinstance(sequence_id, str) or (isinstance(sequence_id, int) and sequence_id >= 0)
    ):
        raise RequestError(
            f"sequence_id must be a string or an unsigned integer, got {sequence_id!r}"
        )
    if isinstance(sequence_id, int) and sequence_id > LARGEST_ID:
        raise RequestError(f"sequence_id {sequence_id} is past the largest, 2**64 - 1")
    if sequence_id in (0, ""):
        if any(flags.values()):
            raise RequestError("sequence_start and sequence_end need a sequence_id")
        return None
    return Control(sequence_id, **flags)


@dataclass
class _Sequence:
    states: dict[str, np.ndarray]
    used: float  # when its last request ended (the clock's seconds)
    running: bool = True  # a request of it is running


class Sequences:
    """The open sequences of every step graph, by graph and sequence id; thread-safe."""

    def __init__(
        self,
        idle_seconds: float = IDLE_SECONDS,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
        counted: Callable[[str, int], None] = lambda graph, count: None,
    ):
        """``counted(graph, count)`` is told each graph's count of open sequences when it
        changes (the server's ``Metrics.set_open_sequences``)."""
        self.idle_seconds, self.capacity, self.clock = idle_seconds, capacity, clock
        self.counted = counted
        self._open: dict[tuple[str, int | str], _Sequence] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._open)

    def predict(
        self, served: ServedGraph, sequence: Control | None, inputs: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        """``served``'s outputs for ``inputs``: alone, or as a step of ``sequence``, fed the
        states kept for it and answering all outputs but their next values."""
        if sequence is None:
            return served.predict(inputs)
        names = served.graph.states
        if not names:
            raise RequestError(
                f"graph {served.name} keeps no state between requests: it takes no sequence_id"
            )
        given = {name: inputs[name] for name in names if name in inputs}
        inputs = {name: value for name, value in inputs.items() if name not in given}
        key = (served.name, sequence.id)
        with self._lock:
            kept = self._claim(key, sequence, served, given, inputs)
        try:
            outputs = served.predict(inputs | kept.states)
        except BaseException:
            with self._lock:
                kept.running, kept.used = False, self.clock()
                if sequence.start and self._open.get(key) is kept:
                    self._close(key)
            raise
        with self._lock:
            kept.states = {name: outputs.pop(f"next_{name}") for name in names}
            kept.running, kept.used = False, self.clock()
            if sequence.end and self._open.get(key) is kept:
                self._close(key)
        return outputs

    def _claim(
        self,
        key: tuple[str, int | str],
        sequence: Control,
        served: ServedGraph,
        given: dict[str, Any],
        inputs: dict[str, Any],
    ) -> _Sequence:
        """The open sequence ``key``, marked running (a new one at a start); holds the lock."""
        named = f"sequence {sequence.id!r} of {served.name}"
        kept = self._open.get(key)
        if kept is not None and kept.running:
            raise RequestError(f"{named} has a request running: send its steps one at a time", 409)
        if kept is not None and self._idle(kept):
            self._drop(key)
            kept = None
        if not sequence.start:
            if kept is None:
                raise RequestError(
                    f"{named} is not open: start it with sequence_start (sequence_end closes a "
                    f"sequence, and one idle for {self.idle_seconds:g} s is dropped)"
                )
            if given:
                raise RequestError(
                    f"{named}: the server keeps its state {', '.join(given)}; send it only "
                    "with sequence_start"
                )
            kept.running = True
            return kept
        if kept is None and len(self._open) >= self.capacity:
            self._expire()
            if len(self._open) >= self.capacity:
                raise RequestError(
                    f"{self.capacity} sequences are open, the most this server keeps: end one "
                    f"(sequence_end) or let one idle for {self.idle_seconds:g} s be dropped",
                    429,
                )
        kept = _Sequence(_initial_states(served, named, given, inputs), self.clock())
        self._open[key] = kept
        self._count(served.name)
        return kept

    def expire(self) -> None:
        """Drop every sequence idle for ``idle_seconds``, with a log line each."""
        with self._lock:
            self._expire()

    def _expire(self) -> None:
        for key in [key for key, kept in self._open.items() if self._idle(kept)]:
            self._drop(key)

    def _idle(self, kept: _Sequence) -> bool:
        return not kept.running and self.clock() - kept.used > self.idle_seconds

    def _close(self, key: tuple[str, int | str]) -> None:
        del self._open[key]
        self._count(key[0])

    def _count(self, graph: str) -> None:
        self.counted(graph, sum(1 for opened, _ in self._open if opened == graph))

    def _drop(self, key: tuple[str, int | str]) -> None:
        self._close(key)
        graph, sequence_id = key
        log.info(f"sequence {sequence_id!r} of {graph} dropped: idle for {self.idle_seconds:g} s")

    async def drop_idle(self) -> None:
        """Drop idle sequences every half ``idle_seconds``, until cancelled (the server's
        event loop runs it; a sequence found idle by its next request is dropped then)."""
        while True:
            await asyncio.sleep(self.idle_seconds / 2)
            self.expire()


def _initial_states(
    served: ServedGraph, named: str, given: dict[str, Any], inputs: dict[str, Any]
) -> dict[str, Any]:
    """The states a sequence starts from: those its start request gives, and zeros (of the
    request's batch size) for the others where the graph's states start at zeros."""
    specs = {spec["name"]: spec for spec in served.graph.inputs}
    missing = [name for name in served.graph.states if name not in given]
    if missing and not served.graph.runtime.get("zero_initial_states"):
        raise RequestError(
            f"{named} starts from states the server cannot make up: send "
            f"{', '.join(missing)} with sequence_start"
        )
    batch = max((np.shape(value)[0] for value in inputs.values() if np.ndim(value)), default=1)
    zeros = {
        name: np.zeros(
            [batch, *(size or 1 for size in specs[name]["shape"][1:])], specs[name]["dtype"]
        )
        for name in missing
    }
    return given | zeros
