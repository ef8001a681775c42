"""What every CLI shares (serving/cli.py): Ctrl-C ends a command with one line and status
130; a closed pipe on stdout ends it quietly with status 141."""

import fcntl
import importlib
import os
import signal
import subprocess
import sys
import tomllib

import pytest

from serving import cli
from tests.conftest import REPO
from tests.test_tagging import TAGGING

BROKEN_PIPE = 141  # what a shell reports for a process that SIGPIPE ends (128 + 13)

INTERRUPTED_BY = {
    "a finalizer": (
        "class Finalized:\n"
        "    def __del__(self):\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "Finalized()\n"
    ),
    "plain code": "signal.raise_signal(signal.SIGINT)\n",
    # what keras_rnn.quiet does while TensorFlow starts
    "stderr redirected": (
        "os.dup2(os.open(os.devnull, os.O_WRONLY), 2)\nsignal.raise_signal(signal.SIGINT)\n"
    ),
}


def interrupt(tmp_path, where: str, sigint=signal.SIG_DFL) -> subprocess.CompletedProcess:
    """A process that presses Ctrl-C inside ``exit_on_interrupt`` while a folder registered
    with ``on_interrupt`` exists; it starts with SIGINT handled as ``sigint``."""
    code = (
        "import os, pathlib, signal, sys, time\n"
        "from serving import cli\n"
        "folder = pathlib.Path(sys.argv[1])\n"
        "folder.mkdir()\n"
        "with cli.exit_on_interrupt(lambda: 'what was kept'), cli.on_interrupt(folder.rmdir):\n"
        f"    {INTERRUPTED_BY[where].replace(chr(10), chr(10) + '    ').rstrip()}\n"
        "    time.sleep(0.5)\n"
        "    print('went on')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "building")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )


@pytest.mark.parametrize("where", INTERRUPTED_BY)
def test_ctrl_c_ends_the_command_with_one_line_after_cleaning_up(where, tmp_path):
    result = interrupt(tmp_path, where)
    assert result.returncode == 130, result.stderr
    assert (result.stdout, result.stderr) == ("", "interrupted: what was kept\n")
    assert not (tmp_path / "building").exists()


def test_ctrl_c_erases_a_progress_line_on_the_terminal(tmp_path):
    """With stderr a terminal and a progress line drawn there (serving.progress), the
    interrupted line starts at the line's start, the progress erased, not glued to it."""
    import pty

    code = (
        "import signal\n"
        "from serving import cli\n"
        "from serving.progress import Progress\n"
        "with cli.exit_on_interrupt(lambda: 'what was kept'):\n"
        "    with Progress('epoch 3/12', 313) as progress:\n"
        "        progress.advance(45)\n"
        "        signal.raise_signal(signal.SIGINT)\n"
    )
    main, terminal = pty.openpty()
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=terminal,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    os.close(terminal)
    shown = os.read(main, 4096).decode()
    os.close(main)
    assert result.returncode == 130
    assert "epoch 3/12: 45/313 (14%)" in shown, shown
    assert shown.endswith("\r\x1b[Kinterrupted: what was kept\r\n"), repr(shown)


def test_an_ignored_ctrl_c_stays_ignored(tmp_path):
    """Started with SIGINT ignored (nohup, a background job), a command keeps running."""
    result = interrupt(tmp_path, "plain code", sigint=signal.SIG_IGN)
    assert (result.returncode, result.stdout, result.stderr) == (0, "went on\n", "")


ENTRY_POINTS = [  # every console script's main, and the CLIs run only as python -m
    *tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"].values(),
    "keras_rnn.toys:main",
    *(f"benchmarks.{name}:main" for name in ("attention_length", "bidirectional", "converter")),
    *(f"benchmarks.{name}:main" for name in ("fusion", "inference", "masks", "serving")),
    *(f"benchmarks.{name}:main" for name in ("training", "xz")),
]


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_every_cli_main_is_pipe_safe(entry_point):
    module, name = entry_point.split(":")
    main = getattr(importlib.import_module(module), name)
    assert main.__code__ is cli.pipe_safe(main).__code__


def into_closed_pipe(*args) -> subprocess.CompletedProcess:
    """``python -m ARGS`` writing to a pipe whose reader is gone before it starts (as a
    ``| head -1`` that has its line)."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        return subprocess.run(
            [sys.executable, "-m", *map(str, args)],
            cwd=REPO,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(writer)


@pytest.mark.parametrize("command", ["serving.predict", "serving.tfserving", "export.verify"])
def test_a_result_into_a_closed_pipe_ends_quietly(command, exported_run, tmp_path):
    """Status 141, as a Unix tool that SIGPIPE ends, and nothing on stderr: a prediction with
    onnxruntime alone, a report of written files, a report after TensorFlow started."""
    extra = {
        "serving.predict": ["--window", "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0"],
        "serving.tfserving": ["--out", tmp_path / "models"],
    }
    result = into_closed_pipe(command, exported_run("lstm"), *extra.get(command, []))
    assert (result.returncode, result.stderr) == (BROKEN_PIPE, "")


def test_a_pipe_closed_after_one_line_as_head_does(tiny_runs):
    """The reader takes the first line of more output than its pipe holds, then closes."""
    text = "the dog runs " * 2000  # 6,000 tokens: a line each
    process = subprocess.Popen(
        [sys.executable, "-m", "serving.predict", TAGGING.exported(tiny_runs), "--text", text],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pipesize=4096,  # the smallest pipe: the lines cannot all fit while the reader is there
    )
    assert fcntl.fcntl(process.stdout, fcntl.F_GETPIPE_SZ) == 4096
    line = b""
    while not line.endswith(b"\n"):
        line += os.read(process.stdout.fileno(), 1)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == BROKEN_PIPE, stderr
    assert line.startswith(b"'the'\t") and stderr == b""


def test_a_broken_pipe_elsewhere_is_not_hidden():
    """A socket's BrokenPipeError, with stdout still read, is no reason to end quietly."""

    @cli.pipe_safe
    def main() -> int:
        raise BrokenPipeError("a socket")

    with pytest.raises(BrokenPipeError, match="a socket"):
        main()
