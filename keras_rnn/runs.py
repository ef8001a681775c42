"""The run directory: layout, creation rules and atomic writes (docs/design.md, section 3)."""

from __future__ import annotations

import json
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_rnn.config import TrainConfig, config_from_dict
from keras_rnn.errors import UserError
from keras_rnn.tasks import config_class, load_task, task_configs
from serving import cli
from serving.outputs import (
    check_outside_owned_folders,
    is_manifest,
    is_run_config,
    read_json_or_none,
    temporary_path,
)


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory."""

    path: Path

    @property
    def config_json(self) -> Path:
        return self.path / "config.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def backup(self) -> Path:
        return self.checkpoints / "backup"

    @property
    def best_weights(self) -> Path:
        return self.checkpoints / "best.weights.h5"

    @property
    def initial_weights(self) -> Path:
        return self.checkpoints / "initial.weights.h5"

    @property
    def model_keras(self) -> Path:
        return self.path / "model.keras"

    @property
    def history_csv(self) -> Path:
        return self.path / "history.csv"

    @property
    def metrics_json(self) -> Path:
        return self.path / "metrics.json"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def tensorboard(self) -> Path:
        return self.path / "tensorboard"

    @property
    def complete(self) -> bool:
        return self.metrics_json.is_file()


# What --force may delete. A run directory is ours when its config.json is the one
# keras_rnn.train writes AND every other top-level entry is a name the run layout uses
# (docs/design.md, section 3); an export when its manifest.json is the one python -m export writes
# and the same holds for its entries. The config alone is not enough: a user who keeps notes
# in a run folder, or points --run-dir at a folder that happens to hold some config.json,
# would lose files. An empty folder holds nothing to lose. Inside our own folders (plots/,
# checkpoints/, ...) everything is taken to be ours.
RUN_ENTRIES = frozenset(
    {"config.json", "vocab", "checkpoints", "model.keras", "history.csv", "metrics.json"}
    | {"plots", "tensorboard", "export"}
)
EXPORT_ENTRIES = frozenset(
    {"manifest.json", "parity.json", "savedmodel", "onnx", "vocab", "triton"}
)
DESKTOP_FILES = frozenset({".DS_Store", "Thumbs.db"})  # a file browser's, in any folder it shows
# Temporaries named after the process that writes them: .tmp-PID-... (atomic_save,
# atomic_write_bytes) and .export.tmp-PID / .export.old-PID (python -m export).
TEMPORARY = re.compile(r"^\.(?:tmp|export\.tmp|export\.old)-(\d+)(?:-|$)")


def _occupied(run: RunDir) -> bool:
    """Whether something is at ``run.path``: a file, a non-empty folder or a broken link (a
    link to an empty folder is a place to write, as a folder is)."""
    path = run.path
    if not path.exists():
        return path.is_symlink()
    return not path.is_dir() or any(path.iterdir())


def _foreign(
    path: Path, marker: str, is_ours: Callable[[Any], bool], layout: frozenset[str], kind: str
) -> str | None:
    """Why the existing ``path`` is not a ``kind`` folder of ours (see RUN_ENTRIES), or None."""
    if path.is_symlink():
        return "is a symbolic link"
    if not path.is_dir():
        return "is a file"
    try:
        names = {entry.name for entry in path.iterdir()}
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if not {name for name in names - DESKTOP_FILES if not TEMPORARY.match(name)}:
        return None  # empty, or only what a writer killed before its first file left
    if not is_ours(read_json_or_none(path / marker)):
        writer = "python -m keras_rnn.train" if kind == "run" else "python -m export"
        return f"has no {marker} written by {writer}"
    strangers = sorted(name for name in names - layout - DESKTOP_FILES if not TEMPORARY.match(name))
    if strangers:
        shown = ", ".join(strangers[:3]) + (", ..." if len(strangers) > 3 else "")
        return f"also holds {shown}, which no {kind} writes"
    return None


def not_a_run(path: Path) -> str | None:
    """Why the existing ``path`` is not a run directory of ours, or None if it is one."""
    reason = _foreign(path, "config.json", is_run_config, RUN_ENTRIES, "run")
    export = path / "export"
    if reason is None and export.exists() and (export_reason := not_an_export(export)):
        return f"has an export/ folder that {export_reason}"
    return reason


def not_an_export(path: Path) -> str | None:
    """Why the existing ``path`` is not an export folder of ours, or None if it is one."""
    return _foreign(path, "manifest.json", is_manifest, EXPORT_ENTRIES, "export")


def check_run_dir(path: str | Path, force: bool = False, resume: bool = False) -> RunDir:
    """Raise ``UserError`` if ``path`` may not be used as asked; changes nothing.

    An existing non-empty path is refused unless it is a run directory of ours (``not_a_run``)
    and ``force`` (delete it and start over) or ``resume`` (continue it; it must hold a
    config.json and be unfinished) is given; so is a path inside another run or an export.
    """
    run = RunDir(Path(path))
    check_run_flags(force, resume)
    check_outside_owned_folders(run.path, "--run-dir")
    if resume:
        check_resumable(run)
    elif _occupied(run):
        if reason := not_a_run(run.path):
            alone = " and --force leaves it alone" if force else ""
            raise UserError(
                f"{run.path} {reason}, so it is not a run of this project{alone}: "
                "pick another --run-dir"
            )
        if not force:
            raise UserError(
                f"{run.path} exists: pass --force to overwrite it, or --resume to continue it"
            )
    return run


def check_run_flags(force: bool, resume: bool) -> None:
    """Refuse ``--force`` with ``--resume``: one deletes the run that the other continues."""
    if force and resume:
        raise UserError("--force and --resume contradict each other: pick one")


def check_export_dir(path: Path, force: bool) -> None:
    """Raise ``UserError`` unless an export may be written to ``path``: nothing is there, or
    (with ``force``) an export of ours, which it replaces (``not_an_export``)."""
    if not (path.exists() or path.is_symlink()):
        return
    if reason := not_an_export(path):
        alone = " and --force leaves it alone" if force else ""
        raise UserError(
            f"{path} {reason}, so it is not an export of this project{alone}: move it away first"
        )
    if not force and any(path.iterdir()):
        raise UserError(f"{path} exists: pass --force to replace it")


def remove_stale_temporaries(run: RunDir) -> None:
    """Delete the temporaries (TEMPORARY) that a killed training or export left in ``run``.

    Only names of our own pattern whose writer is gone: a live process id may be a second
    command writing the same run right now (or, after the id was reused, an unrelated process:
    then the temporary stays until the id is free, which is the safe side). Process ids are
    per machine: writing one run directory from two machines at once is not supported.
    """
    for folder in (run.path, run.checkpoints, run.backup, run.plots, run.path / "vocab"):
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in folder.iterdir():
            match = TEMPORARY.match(entry.name)
            if not match or cli.process_alive(int(match.group(1))):
                continue
            export = folder / "export"
            if entry.name.startswith(".export.old-") and not (
                export.exists() or export.is_symlink()
            ):
                entry.rename(export)  # killed between its two renames: the replaced export is back
            elif entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def prepare_run_dir(path: str | Path, force: bool = False, resume: bool = False) -> RunDir:
    """Check (as ``check_run_dir``), then create the run directory, or reopen it to resume."""
    run = check_run_dir(path, force=force, resume=resume)
    if resume:
        remove_stale_temporaries(run)
        return run
    if _occupied(run):  # a run of ours (check_run_dir refuses anything else)
        _delete_keeping_marker_last(run.path, "config.json")
    run.path.mkdir(parents=True, exist_ok=True)
    return run


def _delete_keeping_marker_last(path: Path, marker: str) -> None:
    """Delete the folder ``path`` of ours, its ``marker`` file (and export/'s manifest.json)
    last: a delete that is killed half-way leaves a folder that is still recognisably ours, so
    that --force can finish it."""
    for entry in path.iterdir():
        if entry.name == marker:
            continue
        if entry.name == "export" and entry.is_dir() and not entry.is_symlink():
            _delete_keeping_marker_last(entry, "manifest.json")
        elif entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (path / marker).unlink(missing_ok=True)
    path.rmdir()


def check_resumable(run: RunDir) -> None:
    """Raise ``UserError`` unless ``run`` was started and has not finished."""
    if not run.config_json.is_file():
        raise UserError(f"cannot resume {run.path}: it has no config.json (never started?)")
    if run.complete:
        raise UserError(f"cannot resume {run.path}: it finished already (pass --force to retrain)")


def atomic_save(path: Path, save: Callable[[Path], Any]) -> None:
    """Call ``save(tmp)`` on a temporary path in the same folder, then rename it to ``path``.

    The temporary name keeps the file's suffixes (Keras checks ``.keras`` / ``.weights.h5``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it to ``path``.

    The file gets the mode the umask gives, as with ``open``. Not ``tempfile.mkstemp`` (or
    NamedTemporaryFile): it creates the file with mode 0600, which the rename keeps, so others
    could not read a run or serve an export. Creating the file with mode 0666 lets the kernel
    apply the umask itself, with no need to read it (``os.umask`` reads only by changing it,
    for every thread). The name carries our process id for ``remove_stale_temporaries``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: Path) -> Any:
    """Read a JSON file the project wrote; a missing or malformed file is a ``UserError``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"{path} is not valid JSON ({error})") from None


def finished_run(path: str | Path) -> tuple[RunDir, TrainConfig]:
    """The finished run at ``path`` and its config; anything else is a ``UserError``."""
    run = RunDir(Path(path))
    if not run.path.is_dir():
        raise UserError(f"run directory not found: {path}")
    saved = read_json(run.config_json)
    task = saved.get("config", {}).get("task") if isinstance(saved, dict) else None
    if task not in task_configs():
        raise UserError(
            f"{run.config_json} names unknown task {task!r} (known: {', '.join(task_configs())})"
        )
    if not run.complete:
        raise UserError(
            f"{path} has not finished training (no metrics.json): finish it with "
            f"python -m keras_rnn.train --run-dir {path} --resume"
        )
    if not run.model_keras.is_file():
        raise UserError(f"{run.model_keras} is missing: retrain the run")
    return run, config_from_dict(config_class(task), saved["config"])


def load_trained_model(run: RunDir) -> Any:
    """The run's trained Keras model, uncompiled, after importing its task (whose own layers,
    such as translation's Bahdanau decoder, register with Keras on import). Keras is imported
    here, after the cheap checks (a CLI has started TensorFlow quietly by then,
    ``keras_rnn.quiet``)."""
    # Checked first because Keras reports any file that is not a zip archive (empty, truncated,
    # garbage) as "File not found", which sends the user looking for the wrong problem.
    if not _is_keras_archive(run.model_keras):
        raise UserError(
            f"{run.model_keras} cannot be loaded: it is not a Keras model file "
            "(corrupt or truncated?): retrain the run"
        )
    import keras

    load_task(read_json(run.config_json)["config"]["task"])  # registers the task's layers
    try:
        return keras.models.load_model(run.model_keras, compile=False)
    except Exception as error:  # a corrupt or foreign file: report it, do not crash
        raise UserError(
            f"{run.model_keras} cannot be loaded: {str(error).splitlines()[0]}"
        ) from None


def _is_keras_archive(path: Path) -> bool:
    """Whether ``path`` is a whole zip archive holding a Keras config (a .keras file)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
