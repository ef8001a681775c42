"""Addition (--task addition): the data split, the bit encoding, the course's target on
held-out pairs, the adder served by onnxruntime alone, decimal addition, and the shared battery
on the default binary run and a tiny decimal run."""

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_rnn.runs import finished_run, load_trained_model
from keras_rnn.tasks.addition import Config as AdditionConfig
from keras_rnn.tasks.addition.task import decimal_answers, examples, split_pairs
from serving.runtime import add, load_graph
from serving.runtime.addition import from_bits, to_bits
from tests.battery import TaskBattery, TaskCase, refusal
from tests.conftest import run_without_tensorflow

A, B = 9, 60  # the served query: --a A --b B


def keras_sum(run_dir: Path) -> dict:
    """What serving.predict --json prints for A + B on a binary run, computed by Keras."""
    run, config = finished_run(run_dir)
    inputs, _ = examples(np.array([[A, B]]), config)
    outputs = load_trained_model(run)({"bits": inputs["bits"]}, training=False)
    probabilities = keras.ops.convert_to_numpy(outputs["sum_bits"])[0, :, 0]
    return {
        "a": A,
        "b": B,
        "sum": int(from_bits(probabilities[None])[0]),
        "bits": config.bits,
        "sum_bit_probabilities": [float(p) for p in probabilities],
    }


def keras_decimal_sum(run_dir: Path) -> dict:
    """What serving.predict --json prints for A + B on a decimal run, computed by Keras."""
    run, config = finished_run(run_dir)
    (answer,) = decimal_answers(load_trained_model(run), np.array([[A, B]]), config)
    return {"a": A, "b": B, "answer": answer, "digits": config.digits}


BINARY = TaskCase(
    task="addition",
    training=(),  # the default run (about 20 s): the course's target is checked on it
    graphs=("binary_adder",),
    metrics=frozenset(
        {"exact_match", "bit_accuracy", "untrained_exact_match", "train_exact_match"}
        | {"test_pairs", "examples"}
    ),
    query=("--a", str(A), "--b", str(B)),
    answer=keras_sum,
    bad_training=(
        refusal(["--bits", "4"], "--bits 4 gives 64 operand pairs", "must leave some for training"),
        refusal(["--bits", "1"], "--bits must be in [2, 16]"),
        refusal(["--test-pairs", "0"], "--test-pairs must be positive"),
        refusal(["--digits", "1"], "--digits 1 gives 100 operand pairs"),
    ),
    bad_predict=(
        refusal(["--a", "128", "--b", "1"], "operand a = 128 is outside [0, 127]"),
        refusal(["--a", "1", "--b", "-1"], "operand b = -1 is outside [0, 127]"),
        refusal(["--a", "1"], "an addition run needs --a and --b"),
        refusal(["--a", "x", "--b", "2"], "--a: invalid int value: 'x'"),
    ),
)

DECIMAL = TaskCase(
    task="addition",
    training=(
        *("--digits", "2", "--train-pairs", "1000", "--test-pairs", "200", "--val-pairs", "100"),
        *("--cell", "gru", "--units", "8", "--epochs", "1"),
    ),
    graphs=("decimal_adder",),
    metrics=frozenset(
        {"exact_match", "digit_accuracy", "untrained_exact_match", "test_pairs", "examples"}
    ),
    query=("--a", str(A), "--b", str(B)),
    answer=keras_decimal_sum,
    bad_predict=(
        refusal(["--a", "100", "--b", "1"], "operand a = 100 is outside [0, 99]"),
        refusal(["--a", "1", "--b", "-1"], "operand b = -1 is outside [0, 99]"),
    ),
)


class TestAdditionBattery(TaskBattery):
    case = BINARY


class TestDecimalAdditionBattery(TaskBattery):
    """Mechanics on a tiny run (docs/tasks/addition.md has the measured 3-digit run)."""

    case = DECIMAL


def test_bits_are_least_significant_first_and_round_trip():
    np.testing.assert_array_equal(to_bits(np.array([6, 1]), 4), [[0, 1, 1, 0], [1, 0, 0, 0]])
    numbers = np.arange(256)
    np.testing.assert_array_equal(from_bits(to_bits(numbers, 8)), numbers)
    assert from_bits(np.array([[0.9, 0.2, 0.51]]))[0] == 5  # probabilities are cut at 0.5


def test_split_covers_every_pair_once_and_is_seeded():
    config = AdditionConfig()
    splits = split_pairs(config)
    assert {name: len(pairs) for name, pairs in splits.items()} == {
        "test": 5000,
        "val": 1000,
        "train": 128 * 128 - 6000,
    }
    keys = [set(map(tuple, pairs)) for pairs in splits.values()]
    assert len(set.union(*keys)) == 128 * 128 and sum(map(len, keys)) == 128 * 128
    assert np.array_equal(split_pairs(config)["test"], splits["test"])
    other = split_pairs(AdditionConfig(data_seed=1))["test"]
    assert not np.array_equal(other, splits["test"])


def test_examples_encode_operands_and_their_sum():
    inputs, targets = examples(np.array([[9, 60]]), AdditionConfig())
    assert inputs["bits"].shape == (1, 8, 2) and targets["sum_bits"].shape == (1, 8, 1)
    assert from_bits(inputs["bits"][..., 0])[0] == 9 and from_bits(inputs["bits"][..., 1])[0] == 60
    assert from_bits(targets["sum_bits"][..., 0])[0] == 69


@pytest.fixture(scope="module")
def adder(tiny_runs):
    """The default addition run, exported."""
    return BINARY.exported(tiny_runs)


def test_default_config_adds_every_held_out_pair_exactly(adder):
    """The issue's target: exact match 1.0 on at least 5,000 pairs never seen in training."""
    metrics = json.loads((adder / "metrics.json").read_text())
    assert metrics["test_pairs"] == 5000
    assert metrics["exact_match"] == 1.0 and metrics["bit_accuracy"] == 1.0
    assert metrics["untrained_exact_match"] < 0.1


def test_adder_is_one_fused_rnn_node(adder):
    (entry,) = json.loads((adder / "export" / "parity.json").read_text())["graphs"]
    assert entry["onnx_op_counts"]["RNN"] == 1  # 16 units: fused


def test_onnxruntime_adds_like_the_course(adder, tmp_path):
    graph = load_graph(adder / "export")
    rng = np.random.default_rng(0)
    for a, b in rng.integers(0, 128, size=(20, 2)):
        assert add(graph, int(a), int(b))["sum"] == a + b
    result = run_without_tensorflow("serving.predict", adder, "--a", "9", "--b", "60")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "a:    00001001",
        "b:    00111100",
        "pred: 01000101",
        "9 + 60 = 69",
    ]
    as_json = run_without_tensorflow("serving.predict", adder, "--a", "127", "--b", "127", "--json")
    assert json.loads(as_json.stdout)["sum"] == 254


def test_decimal_queries_are_reversed_padded_text():
    from serving.runtime.addition import CHARACTERS, decode_answers, encode_answers, encode_queries

    query = encode_queries(np.array([12]), np.array([345]), 3)[0]
    assert "".join(CHARACTERS[i] for i in query) == " 543+21"  # "12+345 ", reversed
    answer = encode_answers(np.array([357]), 3)
    assert decode_answers(np.eye(len(CHARACTERS))[answer]) == ["357"]


def test_decimal_pairs_are_distinct_across_splits():
    splits = split_pairs(
        AdditionConfig(digits=2, train_pairs=5000, test_pairs=3000, val_pairs=1000)
    )
    assert {name: len(pairs) for name, pairs in splits.items()} == {
        "test": 3000,
        "val": 1000,
        "train": 5000,
    }
    codes = np.concatenate([pairs[:, 0] * 100 + pairs[:, 1] for pairs in splits.values()])
    assert len(np.unique(codes)) == 9000 and codes.max() < 10_000


def test_decimal_adder_is_two_fused_grus_and_prints_its_sum(tiny_runs):
    run_dir = DECIMAL.exported(tiny_runs)
    (entry,) = json.loads((run_dir / "export" / "parity.json").read_text())["graphs"]
    assert entry["onnx_op_counts"]["GRU"] == 2
    result = run_without_tensorflow("serving.predict", run_dir, "--a", "12", "--b", "34")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("12 + 34 = ")
    refused = run_without_tensorflow("serving.predict", run_dir, "--a", "100", "--b", "1")
    assert refused.returncode == 2 and "outside [0, 99]" in refused.stderr
