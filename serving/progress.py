"""Where a long step is, shown on a terminal only: one line redrawn in place (carriage
returns) on stderr, or on stdout when only that one is a terminal, and erased when the step
ends. When neither is a terminal (a log file, a pipe) nothing is written, so logs keep the
commands' own lines. Standard library only: the TensorFlow-free runtime uses it too."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import TextIO


def terminal(*streams: TextIO) -> TextIO | None:
    """The first of ``streams`` (default: stderr, then stdout) that is a terminal, or None."""
    for stream in streams or (sys.stderr, sys.stdout):
        try:
            if stream.isatty():
                return stream
        except (AttributeError, ValueError):  # no isatty, or a closed file
            continue
    return None


class Progress:
    """``LABEL: DONE/TOTAL (PERCENT%) DOING`` on ``terminal(*streams)`` (no label, or
    ``streams`` None: nowhere), redrawn when the whole percentage or ``doing`` changes (a few
    hundred writes at most, however many steps); a total of 0 (unknown) shows the count alone.
    Use it as a context manager: the line is erased on leaving, whatever happened."""

    def __init__(self, label: str, total: int, streams: tuple[TextIO, ...] | None = ()) -> None:
        self.label, self.total, self.done = label, total, 0
        self.stream = None if streams is None or not label else terminal(*streams)
        self.shown: tuple[int, str] | None = None
        self.width = 0

    def __enter__(self) -> Progress:
        self.update(0)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def advance(self, count: int = 1, doing: str = "") -> None:
        """``count`` more steps done; ``doing`` names what runs now."""
        self.update(self.done + count, doing)

    def update(self, done: int, doing: str = "") -> None:
        """``done`` steps done in all; ``doing`` names what runs now."""
        self.done = done
        if self.stream is None:
            return
        percent = 100 * done // self.total if self.total else done
        if self.shown == (percent, doing):
            return
        self.shown = (percent, doing)
        count = f"{done:,}/{self.total:,} ({percent}%)" if self.total else f"{done:,}"
        line = " ".join(part for part in (f"{self.label}:", count, doing) if part)
        self._write("\r" + line.ljust(self.width))
        self.width = len(line)

    def close(self) -> None:
        """Erase the line (nothing was written where no terminal shows it)."""
        if self.stream is not None and self.width:
            self._write("\r" + " " * self.width + "\r")
        self.width, self.shown = 0, None

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
