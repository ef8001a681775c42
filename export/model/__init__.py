"""Export a Keras 3 model this project did not train: ``python -m export.model`` and
``export_model``.

The output folder has the layout of a run's ``export/`` (``python -m export``): a SavedModel
with TF Serving's warm-up requests, the fused ONNX graph with its Triton folder,
``manifest.json`` (task ``keras_model``) and ``parity.json``, for one graph named after the
model. It is built in a temporary folder beside it and renamed into place only when parity
holds. This module imports no TensorFlow, so the CLI checks its arguments first.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from export.model.names import MANIFEST_TASK
from keras_rnn.errors import UserError
from keras_rnn.runs import check_export_dir, write_json
from serving import cli
from serving.outputs import check_outside_owned_folders

if TYPE_CHECKING:
    import keras


def export_model(
    model: keras.Model,
    out_dir: str | Path,
    force: bool = False,
    name: str | None = None,
    atol: float | None = None,
    source: str | None = None,
    runtime: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Export the Keras model ``model`` (Functional or Sequential, in memory) to ``out_dir``:
    the graph is named ``name`` or after the model, parity holds within ``atol`` or the
    tolerance of its recurrent cells (``export.parity.ATOL``), and ``source`` (the model file,
    if any) goes into the manifest. ``runtime`` holds facts a runtime reads beside the graph,
    such as a step graph's state names and size: the manifest records them with the graph, and
    ``serving.runtime.load_graph`` gives them back (``ExportedGraph.runtime``). An existing
    ``out_dir`` is replaced only with ``force`` and only when this function wrote it
    (``check_out_dir``); notes go to stderr. Returns the parity report; nothing is written when
    it is not ok."""
    import keras

    from export import onnx
    from export.exporting import build_in_place, write_graphs
    from export.model.graph import custom_objects, model_graph

    out_dir = Path(out_dir)
    check_runtime_facts(runtime or {})
    check_out_dir(out_dir, force)
    remove_stale_temporaries(out_dir)
    graph, notes = model_graph(model, name)
    for note in notes:
        print(f"note: {note}", file=sys.stderr, flush=True)
    if atol is not None:
        graph.atol = atol
    graph.runtime = {**(runtime or {}), **graph.runtime}

    def build(folder: Path) -> dict[str, Any]:
        report, manifest_graphs = write_graphs([graph], folder, graph.atol)
        if report["ok"]:
            manifest = {"task": MANIFEST_TASK, "opset": onnx.OPSET, "model": source}
            write_json(folder / "manifest.json", {**manifest, "graphs": manifest_graphs})
            write_json(folder / "parity.json", report)
        return report

    building, retired = temporaries(out_dir)
    made = [folder for folder in _absolute(out_dir).parents if not folder.exists()]

    def remove_made() -> None:
        """The folders made above ``out_dir`` go again when it was not written (if empty)."""
        for folder in made if not out_dir.exists() else ():
            with contextlib.suppress(OSError):
                folder.rmdir()

    with cli.on_interrupt(remove_made), keras.saving.custom_object_scope(custom_objects(model)):
        try:
            building.parent.mkdir(parents=True, exist_ok=True)
            report = build_in_place(out_dir, building, retired, build)
        finally:
            remove_made()
    for line in report["graphs"][0]["recurrent_layers"]:
        if "Loop" in line:  # correct, only slower: say why
            print(f"note: {line}", file=sys.stderr, flush=True)
    return report


def check_runtime_facts(runtime: dict[str, Any]) -> None:
    """Raise ``UserError`` unless ``runtime`` can go into the manifest: JSON, keyed by
    strings, and without ``task``, which names the graph's maker (``keras_model``)."""
    if "task" in runtime:
        raise UserError(f"runtime facts may not set task: an export of a model has {MANIFEST_TASK}")
    try:
        json.dumps(runtime, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise UserError(f"runtime facts must be JSON: {error}") from None
    if not all(isinstance(key, str) for key in runtime):
        raise UserError("runtime facts must be keyed by strings")


def check_out_dir(out_dir: Path, force: bool) -> None:
    """Raise ``UserError`` unless ``out_dir`` may be written: nothing is there (or an empty
    folder), or, with ``force``, a folder this command wrote (an export of ours,
    ``runs.check_export_dir``, whose manifest.json has task ``keras_model``), and not inside a
    run directory or an export."""
    check_outside_owned_folders(out_dir, "OUT_DIR")
    check_export_dir(out_dir, force)
    manifest = out_dir / "manifest.json"
    if manifest.is_file():  # an export of ours, and force was given (check_export_dir)
        task = _read_task(manifest)
        if task != MANIFEST_TASK:
            raise UserError(
                f"{out_dir} holds the export of a {task} run (python -m export), not an "
                "export python -m export.model wrote, so --force leaves it alone: "
                "move it away first"
            )
    existing = next(folder for folder in _absolute(out_dir).parents if folder.exists())
    if not existing.is_dir():
        raise UserError(f"{out_dir} cannot be written: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{out_dir} cannot be written: no permission to write in {existing}")


def temporaries(out_dir: Path) -> tuple[Path, Path]:
    """The folders beside ``out_dir`` where it is built and where an existing one waits while
    the new one takes its place: ``.export.tmp-PID-NAME`` and ``.export.old-PID-NAME``."""
    target = _absolute(out_dir)
    pid = os.getpid()
    return (
        target.with_name(f".export.tmp-{pid}-{target.name}"),
        target.with_name(f".export.old-{pid}-{target.name}"),
    )


def remove_stale_temporaries(out_dir: Path) -> None:
    """Delete what a killed ``export_model`` into ``out_dir`` left beside it (its temporaries
    whose process is gone); a replaced folder that never got back is put back."""
    target = _absolute(out_dir)
    pattern = re.compile(rf"^\.export\.(tmp|old)-(\d+)-{re.escape(target.name)}$")
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        match = pattern.match(entry.name)
        if not match or cli.process_alive(int(match.group(2))) or entry.is_symlink():
            continue
        if match.group(1) == "old" and not (target.exists() or target.is_symlink()):
            entry.rename(target)  # killed between its two renames
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _read_task(manifest: Path) -> str | None:
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError, AttributeError):
        return None


def _absolute(path: Path) -> Path:
    """``path`` made absolute without resolving links (``.`` and ``..`` get real names)."""
    return Path(os.path.abspath(path))
