"""Shared helpers: run a CLI in a subprocess or in-process, and check user errors."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# tf2onnx copies the whole ONNX graph before each of its optimizer passes, so that it can roll
# back a pass that raises and go on with a warning. In the tests such a pass fails the test
# instead, and the copies (a fifth of tf2onnx's time) are not made: each pass's result is
# the same. Processes that the tests start inherit it.
os.environ.setdefault("TF2ONNX_CATCH_ERRORS", "FALSE")

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


def without_tensorflow(module: str, blocked: Sequence[str] = BLOCKED_MODULES) -> str:
    """A ``python -c`` script that runs ``python -m module`` (arguments after the script)
    where importing any of ``blocked`` raises ImportError."""
    return (
        "import runpy, sys\n"
        f"for name in {tuple(blocked)!r}:\n"
        "    sys.modules[name] = None  # import raises ImportError\n"
        f"sys.argv = [{module!r}, *sys.argv[1:]]\n"
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
    )


def run_without_tensorflow(module: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m module args`` in a process where importing any of BLOCKED_MODULES raises."""
    return _run_python(["-c", without_tensorflow(module), *map(str, args)], timeout)


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


DataFiles = tuple[tuple[str, str], ...]  # (file name, text) of a run's data files


class TinyRuns:
    """Runs trained once per test session, each by its task, training flags and data files, and
    exported once as a copy. Tests must not modify them (copy them first).

    Under pytest-xdist (``make test`` runs two workers) every worker of a session finds the
    runs in one folder: the first worker to ask trains a run while holding its lock, the others
    wait and reuse it, so no run is trained twice."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def trained(self, task: str, flags: Sequence[str], data: DataFiles = ()) -> Path:
        """The finished run of ``--task TASK FLAGS``; ``{data}`` in a flag is the folder
        holding ``data``'s files (name, text)."""
        return self._train(task, flags, data)[0]

    def log(self, task: str, flags: Sequence[str], data: DataFiles = ()) -> str:
        """What training that run printed on stdout."""
        return self._train(task, flags, data)[1]

    def exported(self, task: str, flags: Sequence[str], data: DataFiles = ()) -> Path:
        """A copy of ``trained(task, flags, data)``, exported."""
        with self._built(f"{task}-exported", (task, flags, data)) as (folder, done):
            run_dir = folder / "run"
            if not done:
                from export.__main__ import main as export_main

                shutil.copytree(self.trained(task, flags, data), run_dir)
                with contextlib.redirect_stdout(io.StringIO()):
                    assert export_main([str(run_dir)]) == 0
        return run_dir

    def _train(self, task: str, flags: Sequence[str], data: DataFiles) -> tuple[Path, str]:
        with self._built(f"{task}-trained", (task, flags, data)) as (folder, done):
            log_file = folder / "training.log"
            if not done:
                from keras_rnn import train

                for name, text in data:
                    (folder / name).write_text(text, encoding="utf-8")
                argv = ["--task", task, *(flag.replace("{data}", str(folder)) for flag in flags)]
                log = io.StringIO()
                with contextlib.redirect_stdout(log):
                    assert train.main([*argv, "--run-dir", str(folder / "run")]) == 0
                log_file.write_text(log.getvalue(), encoding="utf-8")
        return folder / "run", log_file.read_text(encoding="utf-8")

    @contextlib.contextmanager
    def _built(self, name: str, key: tuple) -> Iterator[tuple[Path, bool]]:
        """The folder of ``key`` (under its lock) and whether it was built: the caller builds
        it when not. A folder left by a build that failed is emptied first."""
        import hashlib

        from filelock import FileLock

        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:12]
        folder = self.folder / f"{name}-{digest}"
        finished = folder.with_name(folder.name + ".done")
        with FileLock(folder.with_name(folder.name + ".lock")):
            done = finished.exists()
            if not done:
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
            yield folder, done
            finished.touch()


# What the fast tier (`make test-fast`, `pytest -m "not slow"`) leaves out: a test that uses a
# fixture that trains or exports a run (directly or through another fixture), and every test of
# the modules that build packages, run benchmarks or distribute training. Tests that train
# without such a fixture, and the export matrices, carry @pytest.mark.slow themselves.
SLOW_FIXTURES = frozenset({"tiny_runs", "converted"})  # converted: test_export_model's exports
SLOW_MODULES = frozenset(
    {"test_benchmarks", "test_distribute", "test_export_matrix", "test_package"}
)


# The longest files, longest first, measured with --durations=0: make test's xdist workers take
# files in collection order, so these go first and short files fill in at the end.
SLOW_FIRST = (
    "test_train",
    "test_fusion",
    "test_benchmarks",
    "test_resume",
    "test_translate",
    "test_export_matrix",
    "test_charlm",
    "test_examples_seq",
    "test_distribute",
    "test_export_activations",
    "test_export",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark slow the tests SLOW_FIXTURES and SLOW_MODULES name; put SLOW_FIRST's files first."""
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))
        if SLOW_FIXTURES & uses or item.path.stem in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    rank = {stem: index for index, stem in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: files keep order


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> TinyRuns:
    """The session's ``TinyRuns``, shared by its xdist workers (each has its own temporary
    folder inside the session's)."""
    session_folder = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        session_folder = session_folder.parent
    return TinyRuns(session_folder)


def tiny_sine(cell: str) -> list[str]:
    """Training flags of the tiny sine run of ``cell`` (after ``--task sine``)."""
    return ["--cell", cell, *TINY_TRAINING]


@pytest.fixture(scope="session")
def trained_run(tiny_runs):
    """``trained_run(cell)``: the finished tiny sine run of that cell. Tests must not modify
    it (copy it first)."""
    return lambda cell: tiny_runs.trained("sine", tiny_sine(cell))


@pytest.fixture(scope="session")
def exported_run(tiny_runs):
    """``exported_run(cell)``: a copy of ``trained_run(cell)``, exported. Tests must not
    modify it."""
    return lambda cell: tiny_runs.exported("sine", tiny_sine(cell))


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


class Server:
    """A ``python -m serving.server`` process (TensorFlow blocked) and where it listens."""

    def __init__(self, process: subprocess.Popen, ready_line: str, log: Path) -> None:
        import re

        self.process, self.log_path = process, log
        http, grpc = re.search(r"http://([\d.:]+) .* grpc ([\d.:]+)", ready_line).groups()
        self.http, self.grpc = http, grpc  # host:port of each
        self.url = f"http://{http}"

    def log(self) -> str:
        """What the server wrote to stderr so far."""
        return self.log_path.read_text()

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM; the exit status, the rest of stdout, and stderr."""
        self.process.terminate()
        return self.exited()

    def exited(self) -> tuple[int, str, str]:
        """``stop``'s answer for a server already told to stop: a second SIGTERM that comes
        after its event loop has closed would kill it (status -15) rather than stop it."""
        stdout, _ = self.process.communicate(timeout=60)
        return self.process.returncode, stdout, self.log()


def read_until_closed(connection) -> bytes:
    """Everything a socket receives until the server closes it; the socket is closed after."""
    received = b""
    with connection:
        while chunk := connection.recv(65536):
            received += chunk
    return received


@contextlib.contextmanager
def serve_without_tensorflow(*args, log: Path) -> Iterator[Server]:
    """``python -m serving.server ARGS --port 0 --grpc-port 0`` with TensorFlow, Keras and the
    training side unimportable, stderr going to the file ``log``; yields once it says it
    listens, stops it afterwards."""
    blocker = without_tensorflow("serving.server")
    command = [sys.executable, "-c", blocker, *map(str, args), "--port", "0", "--grpc-port", "0"]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        for line in process.stdout:
            if line.startswith("listening on"):
                break
        else:
            process.wait(timeout=60)
            raise AssertionError(f"the server did not start: {log.read_text()}")
        yield Server(process, line, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def interrupt_while_building(args: Sequence, folder: Path) -> tuple[int, str]:
    """``python -m ARGS``, sent SIGINT once a ``.export.tmp-*`` folder appears in ``folder``
    (the output is being built); its exit status and stderr."""
    import signal
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", *map(str, args)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT as a terminal delivers it, even where this test runs with it ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if list(folder.glob(".export.tmp-*")):  # building
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr
