"""The model file: cheap checks before TensorFlow starts, then loading with Keras.

Keras 3 reads any file that is not a zip archive as "File not found", and a class it cannot
find as "Sequential could not be deserialized properly": both send users looking for the wrong
problem, so the file and the classes its config names are checked first.
"""

from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path
from typing import Any

from keras_rnn.errors import UserError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# Packages whose classes Keras imports itself while it loads a file.
KERAS_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp"})
# The module a config names for a class defined in a script, or for any function.
SCRIPT_MODULES = frozenset({"__main__", "builtins"})


def check_model_file(path: Path) -> None:
    """Raise ``UserError`` unless ``path`` is a Keras 3 ``.keras`` archive (a zip holding
    ``config.json``); a legacy HDF5 file and a SavedModel folder are named as such."""
    if path.is_dir():
        saved = " (a SavedModel folder?)" if (path / "saved_model.pb").is_file() else ""
        raise UserError(
            f"{path} is a folder{saved}, not a Keras model file: save the model with "
            "model.save('model.keras') and convert that"
        )
    try:
        with path.open("rb") as file:
            start = file.read(len(HDF5_SIGNATURE))
    except FileNotFoundError:
        raise UserError(f"model file not found: {path}") from None
    except OSError as error:
        raise UserError(f"{path} cannot be read ({error.strerror})") from None
    if start == HDF5_SIGNATURE:
        raise UserError(
            f"{path} is an HDF5 file (the legacy .h5 format, or weights only), not a Keras 3 "
            "model file: load it with keras.models.load_model and save it with "
            "model.save('model.keras'), then convert that"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            config = archive.read("config.json")
    except (zipfile.BadZipFile, OSError):
        raise UserError(
            f"{path} is not a Keras model file (not a zip archive: corrupt or truncated?)"
        ) from None
    except KeyError:
        raise UserError(
            f"{path} is a zip archive but not a Keras model file (no config.json)"
        ) from None
    try:
        json.loads(config)
    except ValueError:
        raise UserError(f"{path} is not a Keras model file (its config.json is not JSON)") from None


def foreign_objects(path: Path) -> dict[str, str]:
    """Each class or function the ``.keras`` file's config names from outside Keras, by the
    name Keras looks it up under (its registered name), with its module."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            module = node.get("module")
            if module is None and "module" in node:
                module = "__main__"  # Keras writes null for a class of the saving script
            if isinstance(module, str) and "class_name" in node:
                if node["class_name"] == "function" and isinstance(node.get("config"), str):
                    name = node["config"]  # a function of the user's (module "builtins")
                else:
                    name = node.get("registered_name") or node["class_name"]
                if module.split(".")[0] not in KERAS_PACKAGES:
                    found.setdefault(name, module)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return found


def load_model_file(path: Path, modules: list[str] = ()) -> Any:
    """The Keras model in the checked file ``path``, uncompiled, after importing ``modules``
    (where its custom classes are defined); a class Keras cannot find is a ``UserError``
    naming it and saying how to make it importable. Call after TensorFlow has started."""
    import keras

    imported = {}
    for module in modules:
        try:
            imported[module] = importlib.import_module(module)
        except ImportError as error:  # includes the module's own failed imports
            hint = " (is its folder on PYTHONPATH?)" if error.name == module else ""
            raise UserError(f"--import {module}: {error}{hint}") from None
    custom_objects = {}
    missing = []
    for name, module in foreign_objects(path).items():
        # a script's class or function (__main__, builtins) may have moved to any module given
        where = [imported[module]] if module in imported else []
        if module in SCRIPT_MODULES:
            where = list(imported.values())
        attribute = name.split(">")[-1]  # a registered name is PACKAGE>NAME
        found = [getattr(m, attribute) for m in where if hasattr(m, attribute)]
        if found:
            custom_objects[name] = found[0]  # in a module the user named: no need to register
        elif keras.saving.get_registered_object(name) is None:
            missing.append((name, module))
    if missing:
        raise UserError(f"{path} uses {_cannot_find(missing)}")
    try:
        return keras.models.load_model(path, custom_objects=custom_objects, compile=False)
    except Exception as error:  # Keras's loader: any error is about this file
        raise UserError(f"{path} cannot be loaded: {str(error).splitlines()[0]}") from None


def _cannot_find(missing: list[tuple[str, str]]) -> str:
    """What Keras cannot find, and how to make it importable."""
    where = {"builtins": "a function", "__main__": "defined in a script"}
    names = [f"{name} ({where.get(module, f'module {module}')})" for name, module in missing]
    shown = ", ".join(names[:-1]) + " and " * (len(names) > 1) + names[-1]
    modules = sorted({module for _, module in missing} - SCRIPT_MODULES)
    here = f"here {', '.join(modules)}; " if modules else ""
    return (
        f"{shown}, which Keras cannot find: pass --import MODULE for each module that defines "
        f"them ({here}a class or function defined in the script that saved the model must "
        "move into a module first), or load the model in Python and call "
        "export.model.export_model"
    )
