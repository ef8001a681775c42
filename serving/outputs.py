"""Where a command may write a file or folder the user names: never inside a run directory or
an export (only the commands that own them write there), never over a file that this project
did not write unless the user passes --force, and one ``UserError`` for any path that cannot
be written. Standard library only: the training side and serving share it."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from serving.errors import UserError


def read_json_or_none(path: Path) -> Any:
    """The JSON value in ``path``, or None if it is missing, unreadable or not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, not UTF-8 or not JSON: not ours
        return None


def is_run_config(value: Any) -> bool:
    """Whether ``value`` is a config.json as ``python -m keras_rnn.train`` writes it."""
    config = value.get("config") if isinstance(value, dict) else None
    return (
        isinstance(config, dict)
        and isinstance(config.get("task"), str)
        and {"data", "environment"} <= value.keys()
    )


def is_manifest(value: Any) -> bool:
    """Whether ``value`` is a manifest.json as ``python -m export`` writes it."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("task"), str)
        and isinstance(value.get("graphs"), list)
        and "opset" in value
    )


def owned_folder_kind(folder: Path) -> str | None:
    """ "run directory" if ``folder``'s config.json is a run's, "export" if its manifest.json
    is an export's, else None."""
    if is_run_config(read_json_or_none(folder / "config.json")):
        return "run directory"
    if is_manifest(read_json_or_none(folder / "manifest.json")):
        return "export"
    return None


def check_outside_owned_folders(path: Path, flag: str) -> None:
    """Raise ``UserError`` if ``path``'s folder or any folder above it, as written or with its
    links resolved (before its ``..``, as the system does), is a run directory or an export
    (``owned_folder_kind``)."""
    written = Path(os.path.abspath(path)).parent
    try:
        resolved = Path(path).absolute().parent.resolve()
    except (OSError, RuntimeError) as error:  # RuntimeError: a loop of links (Python 3.11)
        raise UserError(f"{flag} {path}: its folder cannot be resolved ({error})") from None
    for folder in dict.fromkeys([written, *written.parents, resolved, *resolved.parents]):
        if kind := owned_folder_kind(folder):
            raise UserError(
                f"{flag} {path} is inside the {kind} {folder}, which only its own commands "
                "write: pick a path outside it"
            )


def create_folder(path: Path, flag: str) -> None:
    """Create the folder ``path`` that ``flag`` names, and the missing folders above it, unless
    it exists; a ``UserError`` if that fails."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{flag} {path}: cannot create it ({error.strerror})") from None


def temporary_path(path: Path) -> Path:
    """A new name beside ``path`` to write it under before renaming: ``.tmp-PID-HEX-NAME``
    (the process id lets a later command remove what a killed one left)."""
    return path.with_name(f".tmp-{os.getpid()}-{secrets.token_hex(4)}-{path.name}")


def check_output_file(
    text: str,
    flag: str,
    suffixes: Collection[str],
    force: bool,
    written_here: Callable[[Path], bool],
) -> Path:
    """The path ``text`` that ``flag`` names, checked for writing a new version of it, or a
    ``UserError`` naming what is wrong: an empty name, a folder, a place inside a run directory
    or an export, a suffix (lower case, without the dot) not in ``suffixes``, a missing,
    unwritable or not-a-folder parent (missing folders are not created), something that is
    not a regular file, or an existing file that ``written_here`` does not recognise, unless
    ``force``. Changes nothing."""
    if not text:
        raise UserError(f"{flag} is an empty name: name a file")
    path = Path(text)
    if text.endswith(("/", os.sep)) or path.is_dir():
        raise UserError(f"{flag} {text} is a folder: name a file in it")
    check_outside_owned_folders(path, flag)
    if path.suffix.lower().removeprefix(".") not in suffixes:
        what = f"the suffix {path.suffix}" if path.suffix else "no suffix"
        known = ", ".join(f".{suffix}" for suffix in sorted(suffixes))
        raise UserError(f"{flag} {text} has {what}: end it with one of {known}")
    _check_parent(path, flag)
    if not (path.exists() or path.is_symlink()):
        return path
    if not (path.is_file() or path.is_symlink()):
        raise UserError(f"{flag} {text} is not a regular file: name another file")
    if not force and (path.is_symlink() or not written_here(path)):
        raise UserError(
            f"{flag} {text} exists and this project did not write it: "
            "pass --force to replace it, or name another file"
        )
    return path


def _check_parent(path: Path, flag: str) -> None:
    """Raise ``UserError`` unless a file can be created in ``path``'s folder: tried with a
    temporary of the name the write will use, removed at once."""
    parent = path.parent
    if not parent.is_dir():
        problem = "is not a folder" if parent.exists() else "does not exist: create it first"
        raise UserError(f"{flag} {path}: {parent} {problem}")
    probe = temporary_path(path)
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as error:
        raise UserError(f"{flag} {path}: cannot write in {parent} ({error.strerror})") from None
