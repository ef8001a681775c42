"""What every CLI shares: argument errors and user errors become one line and exit status 2.
Standard library only; it lives here so that serving installs and runs alone."""

from __future__ import annotations

import argparse
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
