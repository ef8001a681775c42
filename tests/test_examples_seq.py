"""examples/attention_seq2seq.py and examples/character_language_model.py: each runs at its
``--quick`` size in a fresh process and prints what its prose says."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # each trains and decodes; the language model also exports
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_example(name: str, out: Path) -> subprocess.CompletedProcess:
    """``python examples/NAME --quick --out OUT`` from the repository root."""
    return subprocess.run(
        [sys.executable, str(REPO / "examples" / name), "--quick", "--out", str(out)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def seq2seq(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("attention_seq2seq")
    return run_example("attention_seq2seq.py", out), out


@pytest.fixture(scope="module")
def language_model(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("character_language_model")
    return run_example("character_language_model.py", out), out


def test_seq2seq_prints_exact_match_of_both_attentions_and_decodings(seq2seq):
    result, _ = seq2seq
    assert result.returncode == 0, result.stderr[-4000:]
    rows = re.findall(r"^\| (\S+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \|$", result.stdout, re.M)
    assert [row[0] for row in rows] == ["bahdanau", "luong-general"], result.stdout
    for _, _, greedy, beam in rows:  # --quick: 0.730/0.740, 0.830/0.820; untrained: 0
        assert 0.2 < float(greedy) <= 1.0 and 0.2 < float(beam) <= 1.0
    example = r", reference '\d{4}-\d{2}-\d{2}':\n  bahdanau: (.*)\n  luong-general: (.*)$"
    assert re.search(example, result.stdout, re.M), result.stdout


def test_seq2seq_draws_each_attention_into_a_png(seq2seq):
    result, out = seq2seq
    assert result.returncode == 0, result.stderr[-4000:]
    for attention in ("bahdanau", "luong-general"):
        path = out / f"attention_{attention}.png"
        assert f"drawn in {path}" in result.stdout
        assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_language_model_batches_continue_row_by_row(language_model):
    result, out = language_model
    assert result.returncode == 0, result.stderr[-4000:]
    ends = re.search(r"^row 0 of batch 0 ends   (.*)$", result.stdout, re.M).group(1)
    starts = re.search(r"^row 0 of batch 1 starts (.*)$", result.stdout, re.M).group(1)
    text = (out / "corpus.py.txt").read_text(encoding="utf-8")
    assert ast.literal_eval(ends) + ast.literal_eval(starts) in text


def test_language_model_samples_at_three_temperatures(language_model):
    result, _ = language_model
    assert result.returncode == 0, result.stderr[-4000:]
    samples = re.findall(r"^temperature ([\d.]+): (.*)$", result.stdout, re.M)
    assert [float(t) for t, _ in samples] == [0.0, 0.5, 1.0]
    assert all(ast.literal_eval(sample).startswith("def ") for _, sample in samples)


def test_language_model_step_graph_matches_keras_through_onnxruntime(language_model):
    result, _ = language_model
    assert result.returncode == 0, result.stderr[-4000:]
    assert re.search(r"^lm_step exported: parity True .*, 1 fused GRU node$", result.stdout, re.M)
    difference = re.search(r"largest difference: (\S+)$", result.stdout, re.M).group(1)
    assert float(difference) < 1e-5
    assert "the same 200 characters as Keras's: True" in result.stdout
