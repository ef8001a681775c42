"""The Python blocks of README.md and docs/: each page's run, in order, in one fresh process,
and docs/api.md's print what the page says.

A block fenced ```` ```python no-run: REASON ```` is compiled, not run: it needs what a test
does not start (a server someone else runs, a GPU, hours of training), and says so. Every
other ``python`` block runs.
"""

from __future__ import annotations

import functools
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
PYTHON_BLOCK = re.compile(r"^```python\b[ \t]*([^\n]*)\n(.*?)^```", re.S | re.M)
NO_RUN = "no-run"


def python_blocks(page: Path) -> list[tuple[str, str]]:
    """The (info after ``python``, code) of each Python block of ``page``."""
    return PYTHON_BLOCK.findall(page.read_text(encoding="utf-8"))


def runnable(page: Path) -> list[str]:
    """The code of each block of ``page`` that is not marked ``no-run``."""
    return [code for info, code in python_blocks(page) if not info.startswith(NO_RUN)]


API = REPO / "docs" / "api.md"
BLOCKS = runnable(API)
RUNS = [(page, index) for page in PAGES for index in range(len(runnable(page)))]


def done(index: int) -> str:
    return f"--- block {index} done"


@pytest.fixture(scope="module")
def sessions(tmp_path_factory) -> Callable[[Path], subprocess.CompletedProcess]:
    """A page's runnable blocks, run one after the other in a folder of their own, once."""

    @functools.cache
    def run(page: Path) -> subprocess.CompletedProcess:
        blocks = runnable(page)
        script = "".join(
            f"{code}\nprint({done(i)!r}, flush=True)\n" for i, code in enumerate(blocks)
        )
        return subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path_factory.mktemp(page.stem),
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=600,
        )

    return run


def block_problems(page: Path) -> list[str]:
    """What is wrong with the Python blocks of ``page``: a fence tagged ``py...`` other than
    ``python``, a no-run block without its reason, code that does not compile."""
    text = page.read_text(encoding="utf-8")
    problems = [
        f"fenced as {tag}, not python"
        for tag in re.findall(r"^```(py\S*)", text, re.M)
        if tag != "python"
    ]
    for info, code in python_blocks(page):
        if info and not re.fullmatch(rf"{NO_RUN}: \S.*", info):
            problems.append(f"python {info}: not python {NO_RUN}: REASON")
        try:
            compile(code, str(page), "exec")
        except SyntaxError as error:
            problems.append(f"does not compile: {error.msg}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_python_block_compiles_and_runs_or_says_why_not(page):
    assert block_problems(page) == []


def test_bad_blocks_are_found(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nprint(1)\n```\n\n```python no-run: needs a GPU\nprint(2)\n```\n\n"
        "```py\nprint(3)\n```\n\n```python no-run\nprint(4)\n```\n\n```python\nprint(\n```\n"
    )
    assert block_problems(page) == [
        "fenced as py, not python",
        "python no-run: not python no-run: REASON",
        "does not compile: '(' was never closed",
    ]
    assert runnable(page) == ["print(1)\n", "print(\n"]


def test_the_api_page_shows_each_part_of_the_api():
    code = "".join(BLOCKS)
    for name in ("run_training", "finished_run", "load_trained_model", "export_run"):
        assert name in code
    assert "load_graph" in code and "forecast(" in code and "add(" in code
    assert "connect(" in code and "export_model(" in code
    assert len(BLOCKS) == 7


@pytest.mark.slow
@pytest.mark.parametrize(
    ("page", "index"), RUNS, ids=[f"{page.relative_to(REPO)}-{index}" for page, index in RUNS]
)
def test_each_block_runs(sessions, page, index):
    result = sessions(page)
    assert done(index) in result.stdout, result.stderr[-4000:]


@pytest.mark.slow
def test_api_blocks_print_what_the_page_says(sessions):
    lines = sessions(API).stdout.splitlines()
    blocks = [lines.index(done(i)) for i in range(len(BLOCKS))]
    assert "'test_rmse'" in lines[blocks[0] - 1]  # the keys of metrics.json
    assert lines[blocks[1] - 1].startswith("gru 10 sine_forecaster ")
    assert lines[blocks[2] - 1] == "True ['sine_forecaster']"
    next_value, direct, recursive = lines[blocks[3] - 1].split()
    assert math.isfinite(float(next_value)) and direct == recursive == "10"
    assert lines[blocks[4] - 1] == "69"
    assert lines[blocks[5] - 1] == "AVAILABLE (2, 1)"
    assert lines[blocks[6] - 1] == "True True 1"
