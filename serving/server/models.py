"""The graphs a server serves: every ONNX graph of the given runs, by name, at version 1.

Both protocols end here: a request becomes named numpy arrays, ``ServedGraph.predict`` checks
them against the manifest and runs the shared onnxruntime session (``InferenceSession.run``
is thread-safe, so one session serves every worker thread), alone or, while the server
batches, together with concurrent requests (``batching``).
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.errors import UserError
from serving.runtime.graph import ExportedGraph, read_manifest
from serving.server.batching import BatchedGraph

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


@dataclass
class ServedGraph:
    """One ONNX graph and where it came from."""

    graph: ExportedGraph
    run_dir: Path
    batched: BatchedGraph | None = None  # its batcher while a server batches it

    @property
    def name(self) -> str:
        return self.graph.name

    def predict(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """The graph's outputs for ``inputs``, checked first (a bad input is a ``UserError``
        or a ``RequestError`` and never joins a batch)."""
        feed = self.graph.checked_feed(inputs)
        for name, array in feed.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise RequestError(f"input {name} contains NaN or infinity")
        return (self.batched or self.graph).run(feed)


class Registry:
    """The served graphs by name; ``find`` answers 404s with TF Serving's wording."""

    def __init__(self, graphs: dict[str, ServedGraph]):
        self.graphs = graphs

    def find(self, name: str, version: str | None = None) -> ServedGraph:
        served = self.graphs.get(name)
        if served is None:
            raise RequestError(
                f"Servable not found for request: Latest({name}) "
                f"(served: {', '.join(self.graphs)})",
                404,
            )
        if version not in (None, "", VERSION):
            raise RequestError(
                f"Servable not found for request: Specific({name}, {version}) "
                f"(versions: {VERSION})",
                404,
            )
        return served


def load_runs(run_dirs: list[Path], threads: int | None = None) -> tuple[Registry, list[str]]:
    """The ONNX graphs of every run's export, and one note per graph left out (SavedModel
    only). Two runs with a graph of the same name are a ``UserError``."""
    graphs: dict[str, ServedGraph] = {}
    skipped = []
    for run_dir in run_dirs:
        export_dir = run_dir / "export"
        if not run_dir.is_dir():
            raise UserError(f"{run_dir} is not a run directory (no such folder)")
        for entry in read_manifest(export_dir)["graphs"]:
            name = entry["name"]
            if "onnx" not in entry:
                skipped.append(f"{name} ({run_dir}): SavedModel only, serve it with TF Serving")
                continue
            if name in graphs:
                raise UserError(
                    f"graph {name} is in both {graphs[name].run_dir} and {run_dir}: "
                    "serve them from two servers"
                )
            graphs[name] = ServedGraph(ExportedGraph(export_dir, entry, threads), run_dir)
    if not graphs:
        raise UserError("no ONNX graph to serve in " + ", ".join(map(str, run_dirs)))
    return Registry(graphs), skipped
