"""Shared helpers: run a CLI in a subprocess or in-process, and check user errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A model small and short enough to train in a couple of seconds.
TINY_TRAINING = ["--units", "4", "--epochs", "2", "--batch-size", "64", "--patience", "0"]


def run_module(module: str, *args, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m module args`` from the repository root, output captured as text."""
    return _run_python(["-m", module, *map(str, args)], timeout)


def _run_python(arguments: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


# Importing any of these raises in run_without_tensorflow: the serving side installs and runs
# without TensorFlow, Keras, their converters, and without the training package itself.
BLOCKED_MODULES = ("tensorflow", "keras", "tf2onnx", "tensorflow_text", "tf_keras", "keras_rnn")


def run_without_tensorflow(module: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m module args`` in a process where importing any of BLOCKED_MODULES raises."""
    blocker = (
        "import runpy, sys\n"
        f"for name in {BLOCKED_MODULES!r}:\n"
        "    sys.modules[name] = None  # import raises ImportError\n"
        f"sys.argv = [{module!r}, *sys.argv[1:]]\n"
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
    )
    return _run_python(["-c", blocker, *map(str, args)], timeout)


def assert_user_error(status: int, stderr: str, *fragments: str) -> None:
    """Exit status 2, one ``error:`` line on stderr naming the problem, no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 2, stderr
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def cli_error(capsys):
    """Call an in-process ``main(argv)`` and assert it fails as a user error mentioning
    every fragment; returns the message."""

    def check(main, argv: list[str], *fragments: str) -> str:
        capsys.readouterr()
        status = main([str(a) for a in argv])
        stderr = capsys.readouterr().err
        assert_user_error(status, stderr, *fragments)
        return stderr

    return check


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """``trained_run(cell)``: a finished tiny sine run of that cell, trained once per session.
    Tests must not modify it (copy it first)."""
    from keras_rnn import train

    runs = {}

    def get(cell: str) -> Path:
        if cell not in runs:
            run_dir = tmp_path_factory.mktemp("trained") / f"tiny-{cell}"
            assert train.main(["--cell", cell, "--run-dir", str(run_dir), *TINY_TRAINING]) == 0
            runs[cell] = run_dir
        return runs[cell]

    return get


@pytest.fixture(scope="session")
def exported_run(trained_run, tmp_path_factory):
    """``exported_run(cell)``: a copy of ``trained_run(cell)`` exported once per session.
    Tests must not modify it."""
    import shutil

    from export.__main__ import main as export_main

    runs = {}

    def get(cell: str) -> Path:
        if cell not in runs:
            run_dir = tmp_path_factory.mktemp("exported") / f"tiny-{cell}"
            shutil.copytree(trained_run(cell), run_dir)
            assert export_main([str(run_dir)]) == 0
            runs[cell] = run_dir
        return runs[cell]

    return get


def foreign_classes(model_keras: Path) -> list[str]:
    """Every class a .keras file's config names from outside Keras (layers, metrics, losses,
    optimizer, ...). Keras imports no other package's module while it loads a file, so any such
    class makes plain ``keras.models.load_model`` fail unless its module was imported first."""
    import json
    import zipfile

    found = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            module = node.get("module")
            foreign = isinstance(module, str) and module.split(".")[0] != "keras"
            if foreign and "class_name" in node:
                found.add(f"{module}.{node['class_name']}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    with zipfile.ZipFile(model_keras) as archive:
        walk(json.loads(archive.read("config.json")))
    return sorted(found)
