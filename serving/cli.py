"""What every CLI shares: argument errors and user errors become one line and exit status 2.
Standard library only; it lives here so that serving installs and runs alone."""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from serving.errors import UserError


class FlagGroup(Protocol):
    """Where a module adds its flags: an argparse parser or group, or a wrapper of one."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action: ...


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are ``UserError``s instead of usage text and exit status 2."""

    def error(self, message: str):
        raise UserError(message)


def report(error: UserError) -> int:
    """Print ``error`` as one line on stderr; return the exit status for user mistakes."""
    print(f"error: {error}", file=sys.stderr)
    return 2


INTERRUPTED = 130  # the shell's status for a process ended by SIGINT (128 + 2)
BROKEN_PIPE = 141  # the shell's status for a process ended by SIGPIPE (128 + 13)
_cleanups: list[Callable[[], None]] = []


@contextlib.contextmanager
def exit_on_interrupt(note: Callable[[], str]) -> Iterator[None]:
    """Within the block, Ctrl-C ends the command at once: the clean-ups registered with
    ``on_interrupt`` run, one ``interrupted: NOTE`` line is printed (``note()`` says what was
    kept or how to go on), and the process exits with status 130.

    Python's default raises ``KeyboardInterrupt`` wherever the main thread is. Inside
    TensorFlow's C++ calls it surfaces as a ``SystemError`` traceback, and in an object's
    finalizer Python prints and drops it and the command goes on. Ending the process is what
    SIGKILL does too, which every writer here survives (atomic renames; --resume continues from
    the last backup), so nothing is lost that an orderly unwinding would have kept.
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # nohup, `cmd &`: keep ignoring
    ):
        yield  # signal handlers belong to the main thread; elsewhere Python's default stays
        return
    # The line goes to the terminal's stderr as it was on entry: while TensorFlow starts,
    # descriptor 2 points at a capture file (keras_rnn.quiet). os.write, not print: the handler
    # may interrupt a buffered write to the same stream.
    terminal = os.dup(2)

    def handler(signum: int, frame: object) -> None:
        for cleanup in reversed(_cleanups):
            with contextlib.suppress(Exception):  # a clean-up that fails must not hide the line
                cleanup()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            if sys.stdout.isatty():
                os.write(sys.stdout.fileno(), b"\n")  # end a progress bar's line
        with contextlib.suppress(OSError):
            if os.isatty(terminal):
                os.write(terminal, b"\r\x1b[K")  # erase a progress line (serving.progress)
        os.write(terminal, f"interrupted: {note()}\n".encode())
        os._exit(INTERRUPTED)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        os.close(terminal)


@contextlib.contextmanager
def on_interrupt(cleanup: Callable[[], None]) -> Iterator[None]:
    """Within the block, a Ctrl-C that ends the command (``exit_on_interrupt``) runs
    ``cleanup`` first, e.g. to remove a half-built folder."""
    _cleanups.append(cleanup)
    try:
        yield
    finally:
        _cleanups.remove(cleanup)


def pipe_safe(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a CLI's ``main``: once nothing reads standard output any more (``| head -1``),
    the command ends quietly with status 141, as a Unix tool that SIGPIPE ends, instead of a
    ``BrokenPipeError`` traceback and status 1.

    Python ignores SIGPIPE, so a write to a pipe whose reader is gone raises wherever it
    happens. Standard output is flushed inside the call (a failed flush at exit would print
    "Exception ignored"), then pointed at os.devnull (Python's documented recipe) so that the
    flush at exit has nowhere to fail. A ``BrokenPipeError`` of anything else (a socket)
    propagates.
    """

    @functools.wraps(main)
    def run(*args: Any, **kwargs: Any) -> int:
        try:
            status = main(*args, **kwargs)
            sys.stdout.flush()
        except BrokenPipeError:
            if not _stdout_unread():
                raise
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return BROKEN_PIPE
        return status

    return run


def _stdout_unread() -> bool:
    """Whether standard output is a pipe or socket whose reader is gone."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # errors and hang-ups are always reported
        events = poller.poll(0)
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no descriptor
        return False
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in events)


def input_file(path: str | Path, kind: str) -> Path:
    """``path`` as a ``Path`` once something that is not a folder is there; else a
    ``UserError`` that names the flag's mistake (``kind`` names the file: "CSV", "CoNLL")."""
    file = Path(path)
    if file.is_dir():
        raise UserError(f"{path} is a folder, not a {kind} file: give the file's path")
    if not file.exists():
        raise UserError(f"{kind} file not found: {path}")
    return file


def positive_int(text: str) -> int:
    """argparse ``type`` for counts that must be at least 1 (threads, repeats, ...)."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse ``type`` for values that must be at least 0 (seeds, ...)."""
    return _int_at_least(text, 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """argparse ``type`` for a finite number above 0 (a time in seconds, ...)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text!r}")
    return value


def _int_at_least(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` may still be running (True when unsure): a temporary named after
    a process that is gone was left by a killed command and may be removed."""
    if pid == os.getpid() or os.name == "nt":  # on Windows, os.kill would end the process
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):  # no such process id can exist
        return False
    except OSError:  # PermissionError: another user's process
        return True
    return True
