"""What every CLI shares (serving/cli.py): Ctrl-C ends a command with one line and status 130."""

import signal
import subprocess
import sys

import pytest

from tests.conftest import REPO

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


def test_an_ignored_ctrl_c_stays_ignored(tmp_path):
    """Started with SIGINT ignored (nohup, a background job), a command keeps running."""
    result = interrupt(tmp_path, "plain code", sigint=signal.SIG_IGN)
    assert (result.returncode, result.stdout, result.stderr) == (0, "went on\n", "")
