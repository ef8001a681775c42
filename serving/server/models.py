"""What a server serves, by name, at version 1: every ONNX graph of the given runs
(``ServedGraph``), and each run as one model of its task (``TaskModel``, implemented in
``serving.server.tasks`` and, for charlm, ``serving.server.generate``).

Both protocols end here: a request becomes named numpy arrays, ``ServedGraph.predict`` checks
them against the manifest and runs the shared onnxruntime session (``InferenceSession.run``
is thread-safe, so one session serves every worker thread), alone or, while the server
batches, together with concurrent requests (``batching``); ``TaskModel.infer`` checks them
against the task model's tensors and runs the task's runtime over the same sessions. Each
graph is an ``ObservedGraph``, which tells the metrics of every run of its session, whoever
makes it: a batch of concurrent requests is one run.
"""

from __future__ import annotations

import logging
import re
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from serving.errors import UserError
from serving.runtime.graph import ExportedGraph, read_manifest
from serving.server.batching import BatchedGraph, BatchOptions

VERSION = "1"  # the export's one version (savedmodel/<name>/1 in TF Serving's layout)
log = logging.getLogger("serving.server")


NESTED_TOO_DEEPLY = "the request is nested too deeply (past Python's recursion limit)"


class RequestError(Exception):
    """A request the server refuses: ``status`` is the HTTP status (400, 404, 413, ...)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def refusal(error: Exception) -> RequestError:
    """The answer to a request that raised ``error``, for both protocols: a ``RequestError``
    as it is; a ``UserError`` (an input the runtime's checks refused) a 400, and so is a
    ``RecursionError`` (JSON nested nearly as deep as the parser allows, met again when a
    message repeats a value or numpy reads it); anything else is a fault of the server: a 500
    naming the exception's type, logged here once with its traceback."""
    if isinstance(error, RequestError):
        return error
    if isinstance(error, UserError):
        return RequestError(str(error))
    if isinstance(error, RecursionError):
        return RequestError(NESTED_TOO_DEEPLY)
    log.error("".join(traceback.format_exception(error)).rstrip())
    return RequestError(f"internal error: {type(error).__name__}", 500)


class ObservedGraph(ExportedGraph):
    """An ``ExportedGraph`` as the server runs it. It tells ``executed(rows)``, once set, of
    each run of its session on a batch of ``rows``: every run ends in ``run`` (a call checks
    its inputs, then runs), so a request for the graph and a task model's calls of it are told
    alike, once per run. While the server batches, ``batched`` is its batcher, which requests
    for the graph join; a task model's calls (``graph(**inputs)``, as its runtime makes them)
    join it too where ``calls_batched`` is set (``TaskModel.start_batching``)."""

    executed: Callable[[int], None] | None = None
    batched: BatchedGraph | None = None
    calls_batched = False

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        if self.batched is None or not self.calls_batched:
            return super().__call__(**inputs)
        return self.batched.run(self.checked_feed(inputs))

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = super().run(feed)
        if self.executed is not None:
            self.executed(len(next(iter(feed.values()))))
        return outputs


@dataclass
class ServedGraph:
    """One ONNX graph and where it came from; ``prefix`` is its run's (``NAME.`` for a run
    served as ``--run NAME=RUN_DIR``, else empty)."""

    graph: ObservedGraph
    run_dir: Path
    prefix: str = ""

    @property
    def name(self) -> str:
        """The name it is served under: its prefix and the graph's name."""
        return self.prefix + self.graph.name

    def predict(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """The graph's outputs for ``inputs``, checked first (a bad input is a ``UserError``
        or a ``RequestError`` and never joins a batch)."""
        feed = self.graph.checked_feed(inputs)
        for name, array in feed.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise RequestError(f"input {name} contains NaN or infinity")
        return (self.graph.batched or self.graph).run(feed)


# Request parameters of the protocols themselves, which no task model takes as its own: the
# HTTP binary extension's, and the priority and timeout that tritonclient sends when asked.
PROTOCOL_PARAMETERS = frozenset({"binary_data_output", "priority", "timeout"})


class TaskModel(ABC):
    """One run served as one model of its task: what a user of the task thinks in (texts, a
    window) in, the task's answer out, computed by the run's graphs with the runtime functions
    of ``serving.predict``. Implementations: ``serving.server.tasks.TASK_MODELS``.

    Both protocols end in ``infer``. Inputs arrive as arrays of the datatypes ``inputs``
    declares (the protocol modules parse and check them; BYTES: object arrays of ``bytes``),
    with the Open Inference Protocol's request parameters; outputs leave as arrays (BYTES:
    object arrays of ``str``). TF Serving's REST API calls ``infer``
    without parameters and answers the outputs ``rest_outputs`` names (a SavedModel's
    signature, where TF Serving serves one under the same name).

    A subclass sets the class attributes and writes ``answer``; ``infer`` checks the inputs
    (names, ranks, no empty axis) and the parameters (names, types) against them
    first.
    """

    task: ClassVar[str]  # the task of the runs it serves, and its name unless --run NAME=
    platform: ClassVar[str] = "keras_rnn"  # the Open Inference Protocol's metadata field
    inputs: tuple[dict[str, Any], ...]  # {"name", "datatype", "shape"} each; -1: any size
    outputs: tuple[dict[str, Any], ...]
    parameters: ClassVar[dict[str, type]] = {}  # request parameters: int, float, bool or str
    rest_outputs: ClassVar[tuple[str, ...] | None] = None  # over TF Serving's REST API (None: all)

    def __init__(self, name: str, run_dir: Path, graphs: dict[str, ObservedGraph]):
        self.name, self.run_dir, self.graphs = name, run_dir, graphs

    def start_batching(self, options: BatchOptions | None) -> None:
        """While a server runs: batch concurrent requests with ``options`` (None: batching
        off). Here the runtime's calls of each graph join that graph's batcher with the
        requests for it (exact: ``serving.server.batching``); task models that batch per
        decoding step override it and ``stop_batching``."""
        for graph in self.graphs.values():
            graph.calls_batched = options is not None

    def stop_batching(self) -> None:
        """Answer the requests in flight, then stop batching (the server is stopping)."""
        for graph in self.graphs.values():
            graph.calls_batched = False

    def metadata(self) -> dict[str, Any]:
        """The Open Inference Protocol's model metadata."""
        return {
            "name": self.name,
            "versions": [VERSION],
            "platform": self.platform,
            "inputs": self.inputs,
            "outputs": self.outputs,
        }

    def infer(
        self, inputs: dict[str, np.ndarray], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        """``answer`` on ``inputs`` and ``parameters`` once they fit this model; protocol
        parameters (``PROTOCOL_PARAMETERS``) are left out."""
        return self.answer(self._checked_inputs(inputs), self.checked_parameters(parameters))

    @abstractmethod
    def answer(
        self, inputs: dict[str, np.ndarray], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        """The outputs for checked inputs and parameters; a bad value is a ``UserError``."""

    def _checked_inputs(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        specs = {spec["name"]: spec for spec in self.inputs}
        if set(inputs) != set(specs):
            given = ", ".join(sorted(inputs)) or "none"
            raise RequestError(f"model {self.name} takes inputs {', '.join(specs)}, got {given}")
        for name, array in inputs.items():
            shape = specs[name]["shape"]
            if array.ndim != len(shape):
                raise RequestError(
                    f"input {name} has shape {shape} (-1: any size), got {list(array.shape)}"
                )
            if 0 in array.shape:
                raise RequestError(f"input {name} is empty (shape {list(array.shape)})")
        return inputs

    def checked_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """``parameters`` without the protocols' own, once each is one this model takes, of
        its type; a ``RequestError`` names the first that is not."""
        checked = {}
        for name, value in parameters.items():
            if name in PROTOCOL_PARAMETERS:
                continue
            kind = self.parameters.get(name)
            if kind is None:
                taken = ", ".join(self.parameters) or "none"
                raise RequestError(
                    f"unknown parameter {name!r} for model {self.name} (it takes: {taken})"
                )
            if not _is_kind(value, kind):
                raise RequestError(f"parameter {name} must be {_KIND_NAMES[kind]}, got {value!r}")
            try:
                checked[name] = kind(value)
            except OverflowError:  # an integer past a float's range, for a float parameter
                raise RequestError(f"parameter {name} is too large a number") from None
        return checked


_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def tensor_spec(name: str, datatype: str, *shape: int) -> dict[str, Any]:
    """A task model's input or output as its metadata gives it (-1: any size)."""
    return {"name": name, "datatype": datatype, "shape": list(shape)}


def texts(name: str, array: np.ndarray) -> list[str]:
    """A BYTES input of rank 1 as texts; an element that is not UTF-8 is a 400 naming it."""
    decoded = []
    for index, element in enumerate(array.tolist()):
        try:
            decoded.append(element.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise RequestError(
                f"input {name} element {index} is not UTF-8 text (byte {error.start})"
            ) from None
    return decoded


def padded(rows: Sequence[Sequence[str]]) -> np.ndarray:
    """Lists of strings as one object array, each row padded on the right with ""."""
    array = np.full((len(rows), max(map(len, rows), default=0)), "", dtype=object)
    for index, row in enumerate(rows):
        array[index, : len(row)] = row
    return array


def _is_kind(value: Any, kind: type) -> bool:
    """Whether a parameter's JSON or protobuf ``value`` is of ``kind`` (an integer is a
    number too; a boolean is neither)."""
    if isinstance(value, bool) or kind is bool:
        return isinstance(value, bool) and kind is bool
    return isinstance(value, kind) or (kind is float and isinstance(value, int))


class Registry:
    """The served graphs and task models by name; ``find`` finds a graph and ``find_task`` a
    task model, and both answer 404s with TF Serving's wording."""

    def __init__(self, graphs: dict[str, ServedGraph], tasks: dict[str, TaskModel] | None = None):
        self.graphs = graphs
        self.tasks: dict[str, TaskModel] = tasks or {}

    def find(self, name: str, version: str | None = None) -> ServedGraph:
        """The graph served as ``name``."""
        return self._found(self.graphs, name, version)

    def find_task(self, name: str, version: str | None = None) -> TaskModel:
        """The task model served as ``name``."""
        return self._found(self.tasks, name, version)

    def _found(self, served: dict[str, Any], name: str, version: str | None) -> Any:
        found = served.get(name)
        if found is None:
            raise RequestError(
                f"Servable not found for request: Latest({name}) "
                f"(served: {', '.join([*self.tasks, *self.graphs])})",
                404,
            )
        if version not in (None, "", VERSION):
            raise RequestError(
                f"Servable not found for request: Specific({name}, {version}) "
                f"(versions: {VERSION})",
                404,
            )
        return found


RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # NAME of --run NAME=RUN_DIR


def load_runs(
    runs: Sequence[Path | tuple[str, Path]], threads: int | None = None
) -> tuple[Registry, dict[str, str]]:
    """The ONNX graphs of every run's export, and a note on each graph left out (SavedModel
    only) by the name it would have. A run is a run directory, whose graphs are served under
    their names, or ``(NAME, run directory)``, whose graphs are served as ``NAME.GRAPH``. Two
    graphs served under one name are a ``UserError``."""
    graphs: dict[str, ServedGraph] = {}
    skipped = {}
    for run in runs:
        run_name, run_dir = run if isinstance(run, tuple) else (None, run)
        prefix = "" if run_name is None else f"{run_name}."
        export_dir = run_dir / "export"
        if not run_dir.is_dir():
            raise UserError(f"{run_dir} is not a run directory (no such folder)")
        for entry in read_manifest(export_dir)["graphs"]:
            name = prefix + entry["name"]
            if "onnx" not in entry:
                skipped[name] = f"{name} ({run_dir}): SavedModel only, serve it with TF Serving"
                continue
            if name in graphs:
                raise UserError(
                    f"graph {name} is in both {graphs[name].run_dir} and {run_dir}: "
                    "serve them from two servers, or name the runs (--run NAME=RUN_DIR)"
                )
            served = ServedGraph(ObservedGraph(export_dir, entry, threads), run_dir, prefix)
            graphs[name] = served
    if not graphs:
        raise UserError("no ONNX graph to serve in " + ", ".join(str(run) for run in runs))
    return Registry(graphs), skipped
