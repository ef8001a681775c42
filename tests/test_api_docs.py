"""docs/api.md: every Python block runs, in order, in one fresh process, as the page says."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "api.md").read_text(), re.S)


def done(index: int) -> str:
    return f"--- block {index} done"


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> subprocess.CompletedProcess:
    """The page's blocks run one after the other in a folder of their own."""
    script = "".join(f"{block}\nprint({done(i)!r}, flush=True)\n" for i, block in enumerate(BLOCKS))
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path_factory.mktemp("api"),
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_page_shows_each_part_of_the_api():
    code = "".join(BLOCKS)
    for name in ("run_training", "finished_run", "load_trained_model", "export_run"):
        assert name in code
    assert "load_graph" in code and "forecast(" in code and "add(" in code
    assert "connect(" in code and "export_model(" in code
    assert len(BLOCKS) == 7


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_block_runs(session, index):
    assert done(index) in session.stdout, session.stderr[-4000:]


@pytest.mark.slow
def test_blocks_print_what_the_page_says(session):
    lines = session.stdout.splitlines()
    blocks = [lines.index(done(i)) for i in range(len(BLOCKS))]
    assert "'test_rmse'" in lines[blocks[0] - 1]  # the keys of metrics.json
    assert lines[blocks[1] - 1].startswith("gru 10 sine_forecaster ")
    assert lines[blocks[2] - 1] == "True ['sine_forecaster']"
    next_value, direct, recursive = lines[blocks[3] - 1].split()
    assert math.isfinite(float(next_value)) and direct == recursive == "10"
    assert lines[blocks[4] - 1] == "69"
    assert lines[blocks[5] - 1] == "AVAILABLE (2, 1)"
    assert lines[blocks[6] - 1] == "True True 1"
