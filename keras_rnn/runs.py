"""The run directory: layout, creation rules and atomic writes (DESIGN.md section 3)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_rnn.config import CONFIGS, TrainConfig, config_from_dict
from keras_rnn.errors import UserError


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


def _occupied(run: RunDir) -> bool:
    return run.path.exists() and (not run.path.is_dir() or any(run.path.iterdir()))


def check_run_dir(path: str | Path, force: bool = False, resume: bool = False) -> RunDir:
    """Raise ``UserError`` if ``path`` may not be used as asked; changes nothing.

    An existing non-empty directory is refused unless ``force`` (delete it and start over)
    or ``resume`` (continue it; it must hold a config.json and be unfinished).
    """
    run = RunDir(Path(path))
    if force and resume:
        raise UserError("--force and --resume contradict each other: pick one")
    if resume:
        check_resumable(run)
    elif _occupied(run) and not force:
        hint = "--resume to continue it" if run.config_json.is_file() else "another --run-dir"
        raise UserError(f"{run.path} exists: pass --force to overwrite it, or {hint}")
    return run


def prepare_run_dir(path: str | Path, force: bool = False, resume: bool = False) -> RunDir:
    """Check (as ``check_run_dir``), then create the run directory, or reopen it to resume."""
    run = check_run_dir(path, force=force, resume=resume)
    if resume:
        return run
    if _occupied(run):
        if run.path.is_dir():
            shutil.rmtree(run.path)
        else:
            run.path.unlink()
    run.path.mkdir(parents=True, exist_ok=True)
    return run


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
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".tmp-{path.name}", delete=False
    ) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(f.name, path)


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
    run = RunDir(path)
    if not run.path.is_dir():
        raise UserError(f"run directory not found: {path}")
    saved = read_json(run.config_json)
    task = saved.get("config", {}).get("task") if isinstance(saved, dict) else None
    if task not in CONFIGS:
        raise UserError(
            f"{run.config_json} names unknown task {task!r} (known: {', '.join(CONFIGS)})"
        )
    if not run.complete:
        raise UserError(
            f"{path} has not finished training (no metrics.json): finish it with "
            f"python -m keras_rnn.train --run-dir {path} --resume"
        )
    if not run.model_keras.is_file():
        raise UserError(f"{run.model_keras} is missing: retrain the run")
    return run, config_from_dict(CONFIGS[task], saved["config"])


def load_trained_model(run: RunDir) -> Any:
    """The run's trained Keras model, uncompiled; TensorFlow starts here, after the cheap
    checks."""
    import keras

    try:
        return keras.models.load_model(run.model_keras, compile=False)
    except Exception as error:  # a corrupt or foreign file: report it, do not crash
        raise UserError(
            f"{run.model_keras} cannot be loaded: {str(error).splitlines()[0]}"
        ) from None
