"""Start TensorFlow for a CLI without its start-up output on the terminal, unless the user
asks for it.

While its shared libraries load, TensorFlow's C++ runtime writes lines to file descriptor 2
(absl's "All log messages before absl::InitializeLog()", oneDNN on AVX-512 processors, "Could
not find cuda drivers", "failed call to cuInit", ...). They come before absl logging is set
up, so ``TF_CPP_MIN_LOG_LEVEL`` does not reach them, and from C++, so redirecting
``sys.stderr`` does not either; which lines appear depends on the processor and the CUDA
install. ``start_tensorflow`` therefore imports TensorFlow and Keras, and looks for devices
once, with descriptor 2 pointing at a temporary file. What was captured is shown when the
import fails (a real TensorFlow error reaches the user) or when the user asked for it with
``--verbose`` or KERAS_RNN_VERBOSE=1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from types import ModuleType

VERBOSE_VARIABLE = "KERAS_RNN_VERBOSE"
VERBOSE_HELP = (
    f"show TensorFlow's start-up lines and its log and warnings (or set {VERBOSE_VARIABLE}=1)"
)


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    """The ``--verbose`` flag every CLI that starts TensorFlow offers."""
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)


def verbose_requested(flag: bool = False) -> bool:
    """True when ``--verbose`` was given or KERAS_RNN_VERBOSE is set (and not 0)."""
    return flag or os.environ.get(VERBOSE_VARIABLE, "").strip() not in ("", "0")


def start_tensorflow(verbose: bool = False) -> ModuleType:
    """Import TensorFlow and Keras and list the physical devices (where the CUDA lines come
    from), keeping what that writes off the terminal unless ``verbose`` or KERAS_RNN_VERBOSE
    asks for it; returns the ``tensorflow`` module. Call it after the cheap checks of a CLI and
    before anything imports TensorFlow. Idempotent."""
    if "tensorflow" in sys.modules:  # already started (a second CLI call in one process)
        import tensorflow

        return tensorflow
    verbose = verbose_requested(verbose)
    if not verbose:
        # Read by absl once it is set up, i.e. for the C++ runtime's log after start-up: 3
        # keeps INFO, WARNING and ERROR lines out, FATAL shows. ERROR lines are diagnostics
        # TensorFlow goes on after (e.g. "oneDNN supports DT_BOOL only on platforms with
        # AVX-512. Falling back ..." on some processors); a real failure raises a Python
        # exception, which reaches the user. A value the user set is kept.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with contextlib.nullcontext() if verbose else _descriptor_2_held():
        import keras  # noqa: F401  (loads TensorFlow, its backend)
        import tensorflow

        tensorflow.config.list_physical_devices()
    if not verbose:
        _quiet_python_logs()
    return tensorflow


@contextlib.contextmanager
def _descriptor_2_held() -> Iterator[None]:
    """Point file descriptor 2 at a temporary file while the block runs, then restore it; if
    the block raised, write what was captured to stderr first, so that the error comes with
    what TensorFlow said before it. (Ctrl-C ends the process in serving.cli's handler, which
    writes its line to the descriptor saved before this redirection.)"""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = False
        try:
            yield
        except Exception:
            failed = True
            raise
        finally:
            sys.stderr.flush()  # what Python itself wrote on stderr belongs to the capture
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                captured.seek(0)
                sys.stderr.write(captured.read().decode(errors="replace"))
                sys.stderr.flush()


def _quiet_python_logs() -> None:
    """Keep TensorFlow's, Keras's and tf2onnx's Python-side log and warnings at run time
    (retracing notes, deprecations, conversion steps) off the terminal; errors still show.
    Our own output is plain ``print``, which this does not touch."""
    for name in ("tensorflow", "absl", "tf2onnx", "keras"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("tensorflow", "keras", "tf2onnx", "absl"):
        warnings.filterwarnings("ignore", module=rf"{module}(\.|$)")
