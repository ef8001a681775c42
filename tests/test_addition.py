"""Binary addition (--task addition): the data split, the bit encoding, the course's target on
held-out pairs, and the exported adder served by onnxruntime alone."""

import json
import shutil

import numpy as np
import pytest

from export.__main__ import main as export_main
from keras_rnn import train
from keras_rnn.tasks.addition import Config as AdditionConfig
from keras_rnn.tasks.addition.task import examples, split_pairs
from serving.predict import main as predict_main
from serving.runtime import add, load_graph
from serving.runtime.addition import from_bits, to_bits
from tests.conftest import foreign_classes, run_without_tensorflow


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


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--bits", "4"], ["--bits 4 gives 64 operand pairs", "must leave some for training"]),
        (["--bits", "1"], ["--bits must be in [2, 16]"]),
        (["--test-pairs", "0"], ["--test-pairs must be positive"]),
    ],
)
def test_bad_addition_config_is_one_line(argv, fragments, tmp_path, cli_error):
    cli_error(train.main, ["--task", "addition", "--run-dir", tmp_path / "r", *argv], *fragments)
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def adder(tmp_path_factory):
    """The default addition run (about 20 s of training), exported."""
    run_dir = tmp_path_factory.mktemp("addition") / "run"
    assert train.main(["--task", "addition", "--run-dir", str(run_dir)]) == 0
    assert export_main([str(run_dir)]) == 0
    return run_dir


def test_default_config_adds_every_held_out_pair_exactly(adder):
    """The issue's target: exact match 1.0 on at least 5,000 pairs never seen in training."""
    metrics = json.loads((adder / "metrics.json").read_text())
    assert metrics["test_pairs"] == 5000
    assert metrics["exact_match"] == 1.0 and metrics["bit_accuracy"] == 1.0
    assert metrics["untrained_exact_match"] < 0.1


def test_adder_exports_fused_with_parity(adder):
    report = json.loads((adder / "export" / "parity.json").read_text())
    (entry,) = report["graphs"]
    assert report["ok"] and entry["name"] == "binary_adder"
    assert entry["fused"] and entry["onnx_op_counts"]["RNN"] == 1  # 16 units: fused


def test_model_names_keras_classes_only(adder):
    """Plain ``keras.models.load_model`` loads it: no class of ours in the file."""
    assert foreign_classes(adder / "model.keras") == []


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


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--a", "128", "--b", "1"], ["operand a = 128 is outside [0, 127]"]),
        (["--a", "1", "--b", "-1"], ["operand b = -1 is outside [0, 127]"]),
        (["--a", "1"], ["an addition run needs --a and --b"]),
        (["--a", "1", "--b", "2", "--window", "3"], ["--window: not an option for addition runs"]),
        (["--a", "x", "--b", "2"], ["--a: invalid int value: 'x'"]),
    ],
)
def test_predict_addition_bad_arguments(argv, fragments, adder, cli_error):
    cli_error(predict_main, [adder, *argv], *fragments)


def test_an_unserved_task_is_one_line(adder, tmp_path, cli_error):
    copy = tmp_path / "run"
    shutil.copytree(adder, copy)
    manifest = copy / "export" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["graphs"][0]["runtime"]["task"] = "chess"
    manifest.write_text(json.dumps(data))
    cli_error(predict_main, [copy, "--a", "1", "--b", "2"], "task 'chess'", "does not serve")


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


def test_decimal_adder_trains_exports_and_serves(tmp_path):
    """Mechanics on a tiny run (the 3-digit target is a measured run: see the README)."""
    run_dir = tmp_path / "run"
    argv = ["--task", "addition", "--digits", "2", "--train-pairs", "1000", "--test-pairs"]
    argv += ["200", "--val-pairs", "100", "--cell", "gru", "--units", "8", "--epochs", "1"]
    assert train.main([*argv, "--run-dir", str(run_dir)]) == 0
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"exact_match", "digit_accuracy", "untrained_exact_match"} <= set(metrics)
    assert foreign_classes(run_dir / "model.keras") == []  # plain keras.models.load_model
    assert export_main([str(run_dir)]) == 0
    (entry,) = json.loads((run_dir / "export" / "parity.json").read_text())["graphs"]
    assert entry["ok"] and entry["fused"] and entry["onnx_op_counts"]["GRU"] == 2
    result = run_without_tensorflow("serving.predict", run_dir, "--a", "12", "--b", "34")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("12 + 34 = ")
    refused = run_without_tensorflow("serving.predict", run_dir, "--a", "100", "--b", "1")
    assert refused.returncode == 2 and "outside [0, 99]" in refused.stderr


def test_decimal_mode_needs_enough_pairs(tmp_path, cli_error):
    argv = ["--task", "addition", "--digits", "1", "--run-dir", tmp_path / "r"]
    cli_error(train.main, argv, "--digits 1 gives 100 operand pairs")
