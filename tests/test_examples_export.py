"""examples/export_your_own_model.py: run small, it shows parity and fused LSTM nodes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from export.parity import ATOL
from tests.conftest import REPO


@pytest.mark.slow
def test_export_your_own_model_shows_parity_and_fused_nodes(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "export_your_own_model.py"), "--quick"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    parity = re.search(
        r"^parity: max abs diff Keras vs onnxruntime (\S+) over 200 rows, (\S+) over the "
        r"(\d+) left-padded ones$",
        result.stdout,
        re.M,
    )
    assert parity, result.stdout
    every_row, left_padded, left_padded_rows = parity.groups()
    assert float(every_row) <= ATOL["lstm"] and float(left_padded) <= ATOL["lstm"]
    assert int(left_padded_rows) > 100  # most rows are left-padded, as pad_sequences pads
    assert "fused export, recurrent ops: 2 LSTM\n" in result.stdout
    assert re.search(r"^Keras's own export, recurrent ops: .*Loop", result.stdout, re.M)
    assert re.search(r"^batch 1, median of 50 calls: .*x\)$", result.stdout, re.M)
    assert (tmp_path / "export_your_own_model" / "fused" / "parity.json").is_file()
