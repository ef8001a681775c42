"""What every CLI shares: argument errors and user errors become one line and exit status 2.
Standard library only; it lives here so that serving installs and runs alone."""

from __future__ import annotations

import argparse
import logging
import sys

from serving.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are ``UserError``s instead of usage text and exit status 2."""

    def error(self, message: str):
        raise UserError(message)


def report(error: UserError) -> int:
    """Print ``error`` as one line on stderr; return the exit status for user mistakes."""
    print(f"error: {error}", file=sys.stderr)
    return 2


INTERRUPTED = 130  # the shell's status for a process ended by SIGINT (128 + 2)


def interrupted(note: str) -> int:
    """Print one line for Ctrl-C (``note`` says what was kept or how to go on); return 130.
    Logging is switched off: what libraries log about objects the interrupt left half-built,
    while the process winds down, is noise."""
    logging.disable(logging.CRITICAL)
    if sys.stdout.isatty():
        print(flush=True)  # end a progress bar's line
    print(f"interrupted: {note}", file=sys.stderr)
    return INTERRUPTED


def positive_int(text: str) -> int:
    """argparse ``type`` for counts that must be at least 1 (threads, repeats, ...)."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse ``type`` for values that must be at least 0 (seeds, ...)."""
    return _int_at_least(text, 0, "an integer >= 0")


def _int_at_least(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value
