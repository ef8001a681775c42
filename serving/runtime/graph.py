"""One exported ONNX graph, fed by name and checked against ``manifest.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from onnxruntime.capi.onnxruntime_pybind11_state import (
    Fail,
    InvalidGraph,
    InvalidProtobuf,
    NoSuchFile,
)

from serving.errors import UserError

_LOAD_ERRORS = (Fail, InvalidGraph, InvalidProtobuf, NoSuchFile)


class ExportedGraph:
    """An onnxruntime session for one graph of an export, with the manifest's input specs.

    Calling it with keyword arrays checks names, dtypes, ranks and fixed sizes first, so a
    wrong input is a ``UserError`` naming the problem rather than an onnxruntime error.
    """

    def __init__(self, export_dir: Path, entry: dict[str, Any], threads: int | None = None):
        self.name: str = entry["name"]
        self.inputs: list[dict[str, Any]] = entry["inputs"]
        self.outputs: list[dict[str, Any]] = entry["outputs"]
        self.runtime: dict[str, Any] = entry.get("runtime", {})
        path = export_dir / entry["onnx"]
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except _LOAD_ERRORS as error:
            raise UserError(f"{path} cannot be loaded (corrupt or truncated?): {error}") from None

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        expected = {spec["name"]: spec for spec in self.inputs}
        missing, unexpected = (
            sorted(set(expected) - set(inputs)),
            sorted(set(inputs) - set(expected)),
        )
        if missing or unexpected:
            problems = [f"missing {', '.join(missing)}"] if missing else []
            problems += [f"unexpected {', '.join(unexpected)}"] if unexpected else []
            raise UserError(
                f"graph {self.name} takes inputs {', '.join(expected)}: {'; '.join(problems)}"
            )
        feed = {name: _checked(name, value, expected[name]) for name, value in inputs.items()}
        names = [output.name for output in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feed), strict=True))


def _checked(name: str, value: Any, spec: dict[str, Any]) -> np.ndarray:
    array = np.asarray(value)
    dtype = np.dtype(spec["dtype"])
    same_kind = array.dtype.kind == dtype.kind or (dtype.kind == "f" and array.dtype.kind in "iu")
    if not same_kind:
        raise UserError(f"input {name} must be {spec['dtype']} numbers, got {array.dtype}")
    shape = spec["shape"]
    if array.ndim != len(shape):
        raise UserError(
            f"input {name} must have rank {len(shape)} (shape {_shape_text(shape)}), "
            f"got shape {tuple(array.shape)}"
        )
    for axis, (size, want) in enumerate(zip(array.shape, shape, strict=True)):
        if want is not None and size != want:
            raise UserError(
                f"input {name} must have size {want} on axis {axis} (shape {_shape_text(shape)}), "
                f"got shape {tuple(array.shape)}"
            )
    return array.astype(dtype, copy=False)


def _shape_text(shape: list[int | None]) -> str:
    return "(" + ", ".join("?" if size is None else str(size) for size in shape) + ")"


def load_graph(
    export_dir: Path, name: str | None = None, threads: int | None = None
) -> ExportedGraph:
    """The graph ``name`` of the export at ``export_dir``; without a name, its only graph or
    the one whose runtime facts mark it ``default``."""
    manifest_path = export_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = {entry["name"]: entry for entry in manifest["graphs"]}
    except FileNotFoundError:
        raise UserError(
            f"{manifest_path} is missing: export the run first (python -m export RUN_DIR)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise UserError(f"{manifest_path} is malformed ({error})") from None
    if name is None:
        defaults = [n for n, entry in entries.items() if entry.get("runtime", {}).get("default")]
        if len(defaults) == 1:
            entries = {defaults[0]: entries[defaults[0]]}
        if len(entries) != 1:
            raise UserError(f"the export has graphs {', '.join(entries)}: pick one with --graph")
        name = next(iter(entries))
    if name not in entries:
        raise UserError(f"the export has no graph {name!r} (graphs: {', '.join(entries)})")
    return ExportedGraph(export_dir, entries[name], threads)
