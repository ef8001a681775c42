"""What every CLI shares (serving/cli.py): Ctrl-C ends a command with one line and status 130."""

import subprocess
import sys

from tests.conftest import REPO

INTERRUPTED_BY = {
    "a finalizer": (
        "class Finalized:\n"
        "    def __del__(self):\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "Finalized()\n"
    ),
    "plain code": "signal.raise_signal(signal.SIGINT)\n",
}


def interrupt(tmp_path, where: str) -> subprocess.CompletedProcess:
    """A process that presses Ctrl-C inside ``exit_on_interrupt`` while a folder registered
    with ``on_interrupt`` exists."""
    code = (
        "import pathlib, signal, sys, time\n"
        "from serving import cli\n"
        "folder = pathlib.Path(sys.argv[1])\n"
        "folder.mkdir()\n"
        "with cli.exit_on_interrupt(lambda: 'what was kept'), cli.on_interrupt(folder.rmdir):\n"
        f"    {INTERRUPTED_BY[where].replace(chr(10), chr(10) + '    ').rstrip()}\n"
        "    time.sleep(5)\n"
        "    print('went on')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "building")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_ctrl_c_ends_the_command_with_one_line_after_cleaning_up(tmp_path):
    for where in INTERRUPTED_BY:
        result = interrupt(tmp_path, where)
        assert result.returncode == 130, (where, result.stderr)
        assert (result.stdout, result.stderr) == ("", "interrupted: what was kept\n"), where
        assert not (tmp_path / "building").exists(), where
