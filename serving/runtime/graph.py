"""One exported ONNX graph, fed by name and checked against ``manifest.json``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from serving.errors import UserError

# What onnxruntime raises for a file it cannot load, found by loading damaged exports: an
# empty file is InvalidArgument ("No graph was found"), garbage and every truncation tried are
# InvalidProtobuf, and bytes changed inside a valid file give InvalidArgument, InvalidGraph,
# Fail or (a name that is no longer UTF-8) UnicodeDecodeError. None of them share a base class
# below Exception.
_LOAD_ERRORS = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.InvalidGraph,
    ort_state.InvalidProtobuf,
    ort_state.NoModel,
    ort_state.NoSuchFile,
    ort_state.RuntimeException,
    UnicodeDecodeError,
)
# What a run on a checked feed can raise: inputs that fit the manifest one by one but not each
# other (a state of another size, a sequence of another length). onnxruntime also logs such a
# failure on stderr; the ``UserError`` says it, so its line is turned off.
_RUN_ERRORS = (ort_state.Fail, ort_state.InvalidArgument, ort_state.RuntimeException)
_RUN_OPTIONS = onnxruntime.RunOptions()
_RUN_OPTIONS.log_severity_level = 4  # fatal only


class ExportedGraph:
    """An onnxruntime session for one graph of an export, with the manifest's input specs.

    Calling it with keyword arrays checks names, dtypes, ranks and fixed sizes first, so a
    wrong input is a ``UserError`` naming the problem rather than an onnxruntime error.
    """

    def __init__(self, export_dir: Path, entry: dict[str, Any], threads: int | None = None):
        self.name: str = entry["name"]
        self.export_dir = export_dir  # where the files the runtime facts name lie (vocab/)
        self.inputs: list[dict[str, Any]] = entry["inputs"]
        self.outputs: list[dict[str, Any]] = entry["outputs"]
        self.runtime: dict[str, Any] = entry.get("runtime", {})
        self.masked_input: dict[str, Any] | None = entry.get("masked_input")
        self.states: list[str] = carried_states(entry)
        self.session = open_session(export_dir / entry["onnx"], threads, entry)
        self._output_names = [output.name for output in self.session.get_outputs()]

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        feed = self.checked_feed(inputs)
        if self.masked_input is not None:
            _warn_unless_right_padded(self.name, self.masked_input, feed)
        return self.run(feed)

    def checked_feed(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """``inputs`` as the arrays the session takes; a ``UserError`` names what is wrong."""
        return checked_inputs(self.name, self.inputs, inputs)

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The session's outputs by name for a checked feed (thread-safe); inputs the graph
        cannot run on together are a ``UserError`` naming their shapes."""
        names = self._output_names
        try:
            results = self.session.run(names, feed, _RUN_OPTIONS)
        except _RUN_ERRORS as error:
            shapes = ", ".join(f"{name} {tuple(array.shape)}" for name, array in feed.items())
            raise UserError(
                f"graph {self.name} cannot run on inputs {shapes} together: {_run_reason(error)}"
            ) from None
        return dict(zip(names, results, strict=True))


def open_session(
    path: Path, threads: int | None = None, entry: dict[str, Any] | None = None
) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session for the ONNX file ``path``; ``threads`` fixes its intra-op
    thread count. A missing, empty, corrupt or unloadable file is a ``UserError`` naming it,
    and so is, given the graph's manifest.json ``entry``, a file whose inputs or outputs are
    not the entry's (names, dtypes, ranks, fixed sizes): another graph's file."""
    if not path.is_file():
        problem = "is not a file" if path.exists() else "is missing"
        raise UserError(f"{path} {problem}: re-export the run (python -m export RUN_DIR --force)")
    damaged = f"{path} cannot be loaded (corrupt or truncated?)"
    if path.stat().st_size == 0:
        raise UserError(f"{damaged}: it is empty (0 bytes)")
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    except ort_state.InvalidProtobuf:
        raise UserError(f"{damaged}: it is not an ONNX model (protobuf parsing failed)") from None
    except (
        ort_state.NotImplemented
    ) as error:  # a whole file with an operator this onnxruntime lacks
        raise UserError(
            f"{path} cannot be loaded by onnxruntime {onnxruntime.__version__}: {_detail(error)}"
        ) from None
    except _LOAD_ERRORS as error:
        raise UserError(f"{damaged}: {_detail(error)}") from None
    if entry is not None:
        _check_signature(path, session, entry)
    return session


def _check_signature(
    path: Path, session: onnxruntime.InferenceSession, entry: dict[str, Any]
) -> None:
    """Raise ``UserError`` unless the session's inputs, then its outputs, are the manifest
    ``entry``'s: the same names, dtypes and ranks, and the same size on every axis both fix."""
    for kind, arguments in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        found = {
            argument.name: (
                _MANIFEST_DTYPES.get(argument.type, argument.type.removeprefix("tensor(")[:-1]),
                [size if isinstance(size, int) else None for size in argument.shape],
            )
            for argument in arguments
        }
        named = {spec["name"]: (spec["dtype"], spec["shape"]) for spec in entry[kind]}
        if found.keys() != named.keys() or not all(
            _fits(*found[name], *named[name]) for name in named
        ):
            raise UserError(
                f"{path} is not the graph {entry['name']} that manifest.json describes: its "
                f"{kind} are {_signature_text(found)}, the manifest names {_signature_text(named)}"
                ": put the export's own file back, or re-export the run"
            )


# onnxruntime's tensor types whose numpy names (the manifest's) differ; others are the same
_MANIFEST_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64"}


def _fits(dtype: str, shape: list, named_dtype: str, named_shape: list) -> bool:
    """Whether a tensor of ``dtype`` and ``shape`` (None: any size) is the named one. An empty
    shape is not compared: onnxruntime reports a scalar and a tensor without shape alike."""
    return dtype == named_dtype and (
        not shape
        or (
            len(shape) == len(named_shape)
            and all(
                a is None or b is None or a == b for a, b in zip(shape, named_shape, strict=True)
            )
        )
    )


def _signature_text(tensors: dict[str, tuple[str, list]]) -> str:
    return ", ".join(
        f"{name} {dtype} {_shape_text(shape)}" for name, (dtype, shape) in tensors.items()
    )


def _detail(error: Exception) -> str:
    """onnxruntime's reason without its prefix, which repeats the path."""
    return str(error).splitlines()[0].split(" failed:", 1)[-1].strip()


def _run_reason(error: Exception) -> str:
    """onnxruntime's reason for a failed run: the first line of its status message, without
    the source location and failed condition that its enforced checks start with."""
    message = str(error).split("Status Message: ", 1)[-1].strip().splitlines()[0]
    return message.split(" was false. ", 1)[-1].split(" : ")[-1]


# How long a sequence of a step graph whose states the server keeps may idle before it is
# dropped: the server's default (``serving.server.sequences``) and the Triton config's
# (``export.triton``). Triton's max_sequence_idle_microseconds defaults to 1 s: too short a
# pause for a client across a network; a kept sequence holds only its states' memory.
IDLE_SECONDS = 60.0


def carried_states(entry: dict[str, Any]) -> list[str]:
    """The state inputs of a step graph's manifest ``entry`` (``lm_step``, ``decoder_step``):
    its runtime facts' ``states`` when it takes each as an input and gives its next value as
    the output ``next_<state>``; none for any other graph."""
    states = entry.get("runtime", {}).get("states", [])
    inputs = {spec["name"] for spec in entry["inputs"]}
    outputs = {spec["name"] for spec in entry["outputs"]}
    if states and all(name in inputs and f"next_{name}" in outputs for name in states):
        return list(states)
    return []


def checked_inputs(
    graph: str, specs: list[dict[str, Any]], inputs: dict[str, Any]
) -> dict[str, np.ndarray]:
    """``inputs`` checked against the manifest's input ``specs`` of ``graph`` (names, dtypes,
    ranks, fixed sizes, id ranges, one batch size) and cast to their dtypes; a ``UserError``
    names what is wrong. String inputs (SavedModel-only graphs) become object arrays."""
    expected = {spec["name"]: spec for spec in specs}
    missing, unexpected = sorted(set(expected) - set(inputs)), sorted(set(inputs) - set(expected))
    if missing or unexpected:
        problems = [f"missing {', '.join(missing)}"] if missing else []
        problems += [f"unexpected {', '.join(unexpected)}"] if unexpected else []
        raise UserError(f"graph {graph} takes inputs {', '.join(expected)}: {'; '.join(problems)}")
    feed = {name: _checked(name, value, expected[name]) for name, value in inputs.items()}
    batches = {name: array.shape[0] for name, array in feed.items() if array.ndim}
    if len(set(batches.values())) > 1:
        sizes = ", ".join(f"{name} {size}" for name, size in batches.items())
        raise UserError(
            f"graph {graph}: every input must have the same batch size (axis 0), got {sizes}"
        )
    return feed


def _checked(name: str, value: Any, spec: dict[str, Any]) -> np.ndarray:
    if spec["dtype"] == "string":
        return np.asarray(value, dtype=object)
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
    if 0 in array.shape:  # onnxruntime aborts the whole process on some empty inputs
        raise UserError(f"input {name} is empty (shape {tuple(array.shape)})")
    check_range(name, array, dtype, spec.get("range"))
    return array.astype(dtype, copy=False)


def check_range(
    name: str, array: np.ndarray, dtype: np.dtype, ids: list[int] | None = None
) -> None:
    """For an integer ``dtype``: every value of ``array`` within ``ids`` ([low, high), an
    Embedding's ids, where the manifest gives them), else within what ``dtype`` holds (a cast
    would wrap). ONNX ``Gather`` wraps a negative id and fails on one past its table. A
    ``UserError`` names the input, the first value outside and the range."""
    if dtype.kind not in "iu" or array.size == 0 or (ids is None and array.dtype == dtype):
        return  # (an array of ``dtype`` holds only what ``dtype`` holds)
    low, high = ids or (int(np.iinfo(dtype).min), int(np.iinfo(dtype).max) + 1)
    if array.min() >= low and array.max() < high:
        return
    value = array[(array < low) | (array >= high)][0]
    what = f"its Embedding's input_dim is {high}" if ids else f"what {dtype} holds"
    raise UserError(f"input {name} holds {value}, outside its range {low} to {high - 1} ({what})")


def padded_steps(values: np.ndarray, pad_value: float) -> np.ndarray:
    """Which steps of ``values`` (batch, time[, features]) are padding, as Keras masks them:
    ids equal to ``pad_value`` (``Embedding(mask_zero=True)`` for 0), or steps whose features
    all equal it (``Masking``)."""
    padded = np.asarray(values) == pad_value
    return padded.all(axis=-1) if padded.ndim == 3 else padded


class PaddingWarning(UserWarning):
    """Masked steps that are not right padding: computed exactly, on a slower path."""


def _warn_unless_right_padded(graph: str, masked: dict[str, Any], feed: dict) -> None:
    """Warn when a row of the masked input has a valid step after a padded one (left padding,
    as ``keras.utils.pad_sequences`` gives by default, or gaps). The export gives Keras's
    answer for such rows too, by moving valid steps first; the caller should know it happened,
    and that right padding takes the fast path."""
    padded = padded_steps(feed[masked["name"]], masked["pad_value"])
    rows = np.flatnonzero((padded[:, :-1] & ~padded[:, 1:]).any(axis=1))
    if len(rows):
        shown = ", ".join(map(str, rows[:5])) + (", ..." if len(rows) > 5 else "")
        warnings.warn(
            f"graph {graph}: {masked['name']} row(s) {shown} are not right-padded (a valid "
            f"step follows padding {masked['pad_value']!r}); the masked steps are skipped as "
            "Keras skips them, on a slower path: pad at the end for the fast one",
            PaddingWarning,
            stacklevel=3,
        )


def _shape_text(shape: list[int | None]) -> str:
    return "(" + ", ".join("?" if size is None else str(size) for size in shape) + ")"


def load_graph(
    export_dir: Path, name: str | None = None, threads: int | None = None
) -> ExportedGraph:
    """The graph ``name`` of the export at ``export_dir``; without a name, its only graph or
    the one whose runtime facts mark it ``default``."""
    entry = manifest_entry(export_dir, name)
    if "onnx" not in entry:
        raise UserError(
            f"graph {entry['name']} was exported as a SavedModel only: serve it with TF Serving"
        )
    return ExportedGraph(export_dir, entry, threads)


def read_manifest(export_dir: Path) -> dict[str, Any]:
    """The export's ``manifest.json``; a ``UserError`` when it is missing or malformed (every
    graph entry must have a name)."""
    path = export_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not all("name" in entry for entry in manifest["graphs"]):
            raise KeyError("name")
    except FileNotFoundError:
        raise UserError(
            f"{path} is missing: export the run first (python -m export RUN_DIR)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise UserError(f"{path} is malformed ({error})") from None
    return manifest


def default_graphs(entries: dict[str, dict[str, Any]]) -> list[str]:
    """The names among the manifest's ``entries`` (by name) whose runtime facts mark them
    ``default``: the graph a task's runtime drives where an export has several."""
    return [name for name, entry in entries.items() if entry.get("runtime", {}).get("default")]


def manifest_entry(export_dir: Path, name: str | None = None) -> dict[str, Any]:
    """The manifest's entry of graph ``name`` (any format); without a name, of the only graph
    or the one whose runtime facts mark it ``default``."""
    entries = {entry["name"]: entry for entry in read_manifest(export_dir)["graphs"]}
    if name is None:
        defaults = default_graphs(entries)
        if len(defaults) == 1:
            entries = {defaults[0]: entries[defaults[0]]}
        if len(entries) != 1:
            raise UserError(f"the export has graphs {', '.join(entries)}: pick one with --graph")
        name = next(iter(entries))
    if name not in entries:
        raise UserError(f"the export has no graph {name!r} (graphs: {', '.join(entries)})")
    return entries[name]
