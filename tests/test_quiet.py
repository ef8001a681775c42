"""keras_rnn.quiet: what TensorFlow's start-up writes on file descriptor 2 stays off the
terminal, unless asked for or unless the start fails. Stand-in ``tensorflow`` and ``keras``
modules write a known line from C-level descriptor 2 (as TensorFlow's C++ runtime does), so
these tests do not depend on what the real library prints on this processor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

STAND_IN_TENSORFLOW = """
import os
os.write(2, b"I0000 stand-in start-up line\\n")
if os.environ.get("STAND_IN_FAILS"):
    raise ImportError("stand-in TensorFlow is broken")


class config:
    @staticmethod
    def list_physical_devices(kind=None):
        os.write(2, b"E0000 stand-in failed call to cuInit\\n")
        return []
"""


def start(tmp_path: Path, *arguments: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``start_tensorflow(verbose='--verbose' in arguments)`` in a process that imports
    the stand-ins, then print one line of our own on stderr."""
    code = (
        "import sys\n"
        "from keras_rnn.quiet import start_tensorflow\n"
        "start_tensorflow('--verbose' in sys.argv)\n"
        "print('error: ours', file=sys.stderr)\n"
    )
    return run_with_stand_ins(tmp_path, code, *arguments, **env)


def run_with_stand_ins(
    tmp_path: Path, code: str, *arguments: str, **env: str
) -> subprocess.CompletedProcess:
    """``python -c code arguments`` with the stand-ins first on the path, and SIGINT as a
    terminal delivers it (even where the tests run with it ignored)."""
    (tmp_path / "tensorflow.py").write_text(STAND_IN_TENSORFLOW)
    (tmp_path / "keras.py").write_text("import tensorflow\n")
    environment = {key: value for key, value in os.environ.items() if "VERBOSE" not in key}
    environment.update(PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO}", **env)
    return subprocess.run(
        [sys.executable, "-c", code, *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_start_up_lines_stay_off_the_terminal(tmp_path):
    result = start(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "error: ours\n"


def test_verbose_flag_and_variable_let_them_through(tmp_path):
    for result in (start(tmp_path, "--verbose"), start(tmp_path, KERAS_RNN_VERBOSE="1")):
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines() == [
            "I0000 stand-in start-up line",
            "E0000 stand-in failed call to cuInit",
            "error: ours",
        ]
    assert start(tmp_path, KERAS_RNN_VERBOSE="0").stderr == "error: ours\n"


def test_a_failed_start_shows_what_tensorflow_wrote_and_its_error(tmp_path):
    result = start(tmp_path, STAND_IN_FAILS="1")
    assert result.returncode == 1
    assert result.stderr.startswith("I0000 stand-in start-up line\n")
    assert "ImportError: stand-in TensorFlow is broken" in result.stderr
