"""The model base folder: each run's SavedModel graphs as ``<graph>/1/``, ``models.config`` and
the batching parameters, built in a temporary sibling of ``--out`` and renamed into place.

``--force`` replaces only a folder this command wrote (``not_ours``); nothing else is deleted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving import cli
from serving.errors import UserError
from serving.outputs import check_outside_owned_folders
from serving.tfserving import config

DESKTOP_FILES = frozenset({".DS_Store", "Thumbs.db"})  # a file browser's, in any folder it shows
_GRAPH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # a folder name and a TF Serving model


@dataclass(frozen=True)
class Graph:
    """One SavedModel graph of a run's export: its manifest entry and its folder."""

    run_dir: Path
    entry: dict[str, Any]

    @property
    def name(self) -> str:
        return self.entry["name"]

    @property
    def savedmodel(self) -> Path:
        return self.run_dir / "export" / self.entry["savedmodel"]


def savedmodel_graphs(run_dirs: Iterable[Path]) -> list[Graph]:
    """The SavedModel graphs of every run's export, in order. A ``UserError`` for a missing run
    or export, an export without SavedModels, a run given twice, or a name in two runs."""
    graphs: dict[str, Graph] = {}
    seen: dict[Path, Path] = {}
    for run_dir in run_dirs:
        if (twice := seen.setdefault(run_dir.resolve(), run_dir)) is not run_dir:
            raise UserError(f"{run_dir} is given twice (as {twice} before): pass each run once")
        for graph in _run_graphs(run_dir):
            if (other := graphs.get(graph.name)) is not None:
                raise UserError(
                    f"graph {graph.name} is exported by both {other.run_dir} and {run_dir}: "
                    "TF Serving serves one model per name, so pass only one of those runs"
                )
            graphs[graph.name] = graph
    return list(graphs.values())


def _run_graphs(run_dir: Path) -> list[Graph]:
    if not run_dir.is_dir():
        raise UserError(f"no run directory at {run_dir}")
    manifest_path = run_dir / "export" / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        names = [entry["name"] for entry in manifest["graphs"]]
        entries = [entry for entry in manifest["graphs"] if "savedmodel" in entry["formats"]]
        for entry in entries:
            if not isinstance(entry["savedmodel"], str):
                raise TypeError(f"graph {entry['name']}'s savedmodel is not a path")
            config.batchable(entry)  # raises on malformed inputs
    except FileNotFoundError:
        raise UserError(
            f"{run_dir} has no export ({manifest_path} is missing): "
            f"export it first (python -m export {run_dir})"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{manifest_path} is malformed ({error!r})") from None
    if not entries:
        raise UserError(
            f"the export of {run_dir} has no SavedModel graph (graphs: {', '.join(names)}): "
            "TF Serving serves SavedModels only"
        )
    graphs = [Graph(run_dir, entry) for entry in entries]
    for graph in graphs:
        if not isinstance(graph.name, str) or not _GRAPH_NAME.fullmatch(graph.name):
            raise UserError(f"{manifest_path} names a graph {graph.name!r}: not a model name")
        if not (graph.savedmodel / "saved_model.pb").is_file():
            raise UserError(
                f"{graph.savedmodel} has no saved_model.pb: "
                f"re-export the run (python -m export {run_dir} --force)"
            )
    return graphs


def not_ours(path: Path) -> str | None:
    """Why the existing ``path`` is not a model base folder this command wrote, or None if it
    is one (or is empty): our ``models.config``, its graphs' folders holding version 1 only,
    the batching parameters, and nothing else."""
    if path.is_symlink():
        return "is a symbolic link"
    if not path.is_dir():
        return "is a file"
    try:
        names = {entry.name for entry in path.iterdir()} - DESKTOP_FILES
        if not names:
            return None
        graphs = config.served_names(path / config.MODELS_CONFIG)
        if graphs is None:
            return f"has no {config.MODELS_CONFIG} written by python -m serving.tfserving"
        strangers = sorted(names - {config.MODELS_CONFIG, config.BATCHING_FILE, *graphs})
        for name in sorted(graphs & names):
            folder = path / name
            if folder.is_symlink() or not folder.is_dir():
                strangers.append(name)
            else:
                versions = {entry.name for entry in folder.iterdir()} - DESKTOP_FILES
                strangers += sorted(f"{name}/{v}" for v in versions - {config.VERSION})
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if strangers:
        shown = ", ".join(strangers[:3]) + (", ..." if len(strangers) > 3 else "")
        return f"also holds {shown}, which python -m serving.tfserving does not write"
    return None


def check_out_dir(out: Path, force: bool) -> None:
    """Raise ``UserError`` unless the folder may be written at ``out``: nothing is there, an
    empty folder, or (with ``force``) a folder this command wrote, which it replaces."""
    if not (out.exists() or out.is_symlink()):
        return
    if reason := not_ours(out):
        alone = " and --force leaves it alone" if force else ""
        raise UserError(
            f"{out} {reason}, so it is not a folder of python -m serving.tfserving{alone}: "
            "pick another --out"
        )
    if not force and set(os.listdir(out)) - DESKTOP_FILES:
        raise UserError(f"{out} exists: pass --force to replace it")


def write_model_base(graphs: list[Graph], out: Path, force: bool) -> None:
    """Write the folder for ``graphs`` at ``out`` (``check_out_dir``'s rules; never inside a run
    directory or an export), atomically: built in ``.NAME.tmp-PID`` beside it, then renamed; an
    old folder of ours is renamed to ``.NAME.old-PID`` first and deleted last. On an error or
    Ctrl-C, ``out`` is as it was."""
    out = Path(os.path.abspath(out))  # "." or "..": a name to rename (links are not followed)
    for graph in graphs:
        if out.resolve().is_relative_to(graph.savedmodel.resolve()):
            raise UserError(f"--out {out} lies inside {graph.savedmodel}, which it copies")
    check_outside_owned_folders(out, "--out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _recover_stale(out)
    except OSError as error:
        raise UserError(f"cannot write {out}: {error}") from None
    check_out_dir(out, force)
    tmp, old = (_sibling(out, kind, os.getpid()) for kind in ("tmp", "old"))
    with cli.on_interrupt(lambda: _undo(tmp, old, out)):
        try:
            _build(graphs, tmp)
            if out.exists():
                os.replace(out, old)
            os.replace(tmp, out)
        except BaseException as error:
            _undo(tmp, old, out)
            if isinstance(error, OSError):
                raise UserError(f"cannot write {out}: {error}") from None
            raise
        shutil.rmtree(old, ignore_errors=True)


def _build(graphs: list[Graph], folder: Path) -> None:
    folder.mkdir()
    for graph in graphs:
        version = folder / graph.name / config.VERSION
        # copyfile, not copy2: modes follow the umask, as every file the project writes.
        shutil.copytree(graph.savedmodel, version, copy_function=shutil.copyfile)
        if config.batchable(graph.entry):
            text = config.batching_parameters(per_model=True)
            (version / config.MODEL_BATCHING_FILE).write_text(text, encoding="utf-8")
    text = config.batching_parameters()
    (folder / config.BATCHING_FILE).write_text(text, encoding="utf-8")
    text = config.models_config([graph.name for graph in graphs])
    (folder / config.MODELS_CONFIG).write_text(text, encoding="utf-8")  # the mark, last


def _undo(tmp: Path, old: Path, out: Path) -> None:
    """Remove the half-built ``tmp``; put the old folder back unless the new one is in place."""
    shutil.rmtree(tmp, ignore_errors=True)
    if old.exists():
        if out.exists() or out.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, out)


def _sibling(out: Path, kind: str, pid: int) -> Path:
    return out.with_name(f".{out.name}.{kind}-{pid}")


def _recover_stale(out: Path) -> None:
    """Undo what a killed run of this command left beside ``out`` (its process is gone)."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(tmp|old)-(\d+)")
    for entry in sorted(out.parent.iterdir()):
        match = pattern.fullmatch(entry.name)
        if match and entry.is_dir() and not entry.is_symlink():
            pid = int(match[2])
            if not cli.process_alive(pid):
                _undo(_sibling(out, "tmp", pid), _sibling(out, "old", pid), out)
