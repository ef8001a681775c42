"""Character language model (--task charlm): tokenizer parity between tensorflow-text and the
runtime, training metrics, export, and identical generation by Keras and onnxruntime."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest

from export.__main__ import main as export_main
from export.fusion import ONNX_OP
from keras_rnn import generate, train
from keras_rnn import text as text_module
from keras_rnn.runs import finished_run, load_trained_model
from keras_rnn.tasks.charlm import Config as CharLMConfig
from keras_rnn.tasks.charlm import task as charlm
from serving.predict import main as predict_main
from serving.runtime.decoding import sample_next
from serving.runtime.vocab import UNKNOWN, Vocabulary
from tests.conftest import (
    assert_user_error,
    foreign_classes,
    run_module,
    run_without_tensorflow,
)

TEXT = "".join(f"def f{i}(x):\n    return x + {i}  # 我要好好学习\n" for i in range(400))


@pytest.mark.parametrize(
    "text", ["def f(x): return x", "我要好好学习，天天向上", "naïve € 😀 \t\n"]
)
def test_runtime_tokenizer_gives_the_tensorflow_text_ids(text):
    vocab = Vocabulary(("", "", *sorted(set("def f(x): return 我要好学习"))))
    expected = text_module.encode(text_module.split_characters(text), vocab)
    ids, unknown = vocab.encode(text)
    np.testing.assert_array_equal(ids, expected)
    assert unknown == sorted({c for c in text if c not in vocab.characters[2:]})
    assert all((i == UNKNOWN) == (c in unknown) for i, c in zip(ids, text, strict=True))


def test_greedy_and_top_k_sampling():
    logits = np.array([9.0, 9.0, 1.0, 3.0, 2.0])  # reserved ids 0 and 1 are never produced
    rng = np.random.default_rng(0)
    assert sample_next(logits, 0.0, 0, rng) == 3
    assert {sample_next(logits, 1.0, 1, rng) for _ in range(20)} == {3}
    assert {sample_next(logits, 5.0, 0, rng) for _ in range(200)} == {2, 3, 4}


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A tiny LM trained on a small ASCII + Chinese file, then exported."""
    folder = tmp_path_factory.mktemp("charlm")
    text_file = folder / "corpus.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    run_dir = folder / "run"
    argv = ["--task", "charlm", "--text", str(text_file), "--run-dir", str(run_dir)]
    argv += ["--units", "16", "--epochs", "2", "--sequence-length", "20", "--sample-length", "30"]
    result = run_module("keras_rnn.train", *argv)
    assert result.returncode == 0, result.stderr
    assert export_main([str(run_dir)]) == 0
    return run_dir, result.stdout


def test_training_reports_perplexity_and_samples(lm_run):
    run_dir, log = lm_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test_perplexity"] == pytest.approx(2 ** metrics["test_bits_per_char"])
    assert 1 < metrics["val_perplexity"] < metrics["vocabulary"]
    with (run_dir / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {"val_perplexity", "val_bits_per_char"} <= set(rows[0])
    assert log.count("sample after epoch") == 2 and "sample after epoch 2: 'def " in log
    vocab = Vocabulary.load(run_dir / "vocab" / "vocab.json")
    assert "我" in vocab.characters and vocab.size == metrics["vocabulary"]


def test_both_graphs_export_fused_with_parity(lm_run):
    run_dir, _ = lm_run
    report = json.loads((run_dir / "export" / "parity.json").read_text())
    assert report["ok"] and [g["name"] for g in report["graphs"]] == ["char_lm", "lm_step"]
    cell = json.loads((run_dir / "config.json").read_text())["config"]["cell"]
    assert all(g["fused"] and g["onnx_op_counts"][ONNX_OP[cell]] == 1 for g in report["graphs"])
    assert (run_dir / "export" / "vocab" / "vocab.json").is_file()


@pytest.mark.parametrize(
    "flags",
    [
        ["--temperature", "0"],
        ["--temperature", "1.0", "--seed", "7"],
        ["--top-k", "3", "--seed", "2"],
    ],
)
def test_onnxruntime_generates_exactly_the_keras_text(flags, lm_run, capsys):
    run_dir, _ = lm_run
    argv = ["--prefix", "def f", "--length", "80", *flags]
    assert generate.main([str(run_dir), *argv]) == 0
    keras_text = capsys.readouterr().out
    result = run_without_tensorflow("serving.predict", run_dir, *argv)
    assert result.returncode == 0, result.stderr
    assert result.stdout == keras_text and keras_text.startswith("def f")
    assert len(keras_text.rstrip("\n")) == len("def f") + 80


def test_unknown_prefix_characters_are_reported_not_fatal(lm_run, capsys):
    run_dir, _ = lm_run
    assert generate.main([str(run_dir), "--prefix", "def é", "--length", "5"]) == 0
    captured = capsys.readouterr()
    assert "1 prefix character(s) not in the vocabulary" in captured.err and "'é'" in captured.err
    assert captured.out.startswith("def é")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--length", "5"], "--prefix is empty"),
        (["--prefix", ""], "--prefix is empty"),
        (["--prefix", "d" * 100_001], "--prefix has 100001 characters: at most 100000"),
        (["--prefix", "d", "--length", "-1"], "--length must be in [0, 100000]"),
        (["--prefix", "d", "--length", "100001"], "--length must be in [0, 100000]"),
        (["--prefix", "d", "--temperature", "-1"], "--temperature must be >= 0"),
        (["--prefix", "d", "--top-k", "999"], "--top-k must be in [0,"),
    ],
)
def test_bad_generation_arguments(argv, fragment, lm_run, cli_error):
    run_dir, _ = lm_run
    cli_error(generate.main, [run_dir, *argv], fragment)
    cli_error(predict_main, [run_dir, *argv], fragment)


def test_generate_needs_a_charlm_run(trained_run, cli_error):
    cli_error(generate.main, [trained_run("lstm"), "--prefix", "x"], "is a sine run")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "text file not found"),
        (b"", "is empty: nothing to learn from"),
        (b"\xff\xfe bad", "is not UTF-8 text"),
        (b"short text", "is too short"),
    ],
)
def test_bad_text_file_is_one_line(content, fragment, tmp_path):
    text_file = tmp_path / "corpus.txt"
    if content is not None:
        text_file.write_bytes(content)
    result = run_module(
        "keras_rnn.train", "--task", "charlm", "--text", text_file, "--run-dir", tmp_path / "r"
    )
    assert_user_error(result.returncode, result.stderr, fragment)
    assert not (tmp_path / "r").exists()


def test_a_test_part_shorter_than_a_window_is_refused(tmp_path, cli_error):
    text_file = tmp_path / "corpus.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    argv = ["--task", "charlm", "--text", text_file, "--test-fraction", "0.001"]
    cli_error(train.main, [*argv, "--run-dir", tmp_path / "r"], "its test part has 17 characters")
    assert not (tmp_path / "r").exists()


def test_a_language_model_cannot_be_bidirectional(tmp_path, cli_error):
    cli_error(
        train.main,
        ["--task", "charlm", "--bidirectional", "--run-dir", tmp_path / "r"],
        "--bidirectional does not apply to a language model",
    )


def test_embedded_corpus_is_the_listed_standard_library_files():
    text, source = charlm.read_text(CharLMConfig())
    assert source["files"] == list(charlm.CORPUS) and source["characters"] == len(text)
    assert 1_000_000 < len(text.encode("utf-8")) < 2_500_000
    assert "def " in text and "class " in text


def test_consecutive_streams_continue_row_by_row():
    config = CharLMConfig(batch_size=3, sequence_length=4)
    ids = np.arange(100, dtype=np.int32)
    batches = list(charlm.streams(ids, config).as_numpy_iterator())
    assert len(batches) == 8  # 99 usable targets // (3 streams x 4 steps)
    (first, targets), (second, _) = batches[0], batches[1]
    np.testing.assert_array_equal(first["characters"][:, 0], [0, 32, 64])  # a stream each
    np.testing.assert_array_equal(targets, first["characters"] + 1)
    np.testing.assert_array_equal(second["characters"][:, 0], first["characters"][:, -1] + 1)


@pytest.mark.parametrize(
    ("length", "vocab_size", "rows", "span", "batches"),
    [
        (1001, 100, 1, 1000, 1),  # a short split: one row
        (4098, 100, 3, 1365, 1),  # as few rows as keep each within MAX_ROW
        (10_001, 4000, 5, 2000, 3),  # big logits: 2 rows per batch
    ],
)
def test_evaluation_rows_cut_a_split_into_long_rows(length, vocab_size, rows, span, batches):
    ids = np.arange(length, dtype=np.int32)
    found = list(charlm.evaluation_rows(ids, vocab_size).as_numpy_iterator())
    inputs = np.concatenate([b[0]["characters"] for b in found])
    labels = np.concatenate([b[1] for b in found])
    assert inputs.shape == (rows, span) and span <= charlm.MAX_ROW and len(found) == batches
    assert all(b[1].size * vocab_size <= charlm.MAX_LOGITS for b in found)
    np.testing.assert_array_equal(inputs.ravel(), np.arange(rows * span))
    np.testing.assert_array_equal(labels, inputs + 1)


def test_a_row_read_whole_equals_the_state_carried_window_by_window():
    """What evaluation_rows relies on: one call over a row gives the logits that a stateful
    twin gives over the row's windows in turn."""
    config = CharLMConfig(units=8, batch_size=2, embedding_size=4, dropout=0.0)
    model = charlm.network(config, vocab_size=12)
    twin = charlm.network(config, vocab_size=12, stateful=True)
    twin.set_weights(model.get_weights())
    rows = np.random.default_rng(0).integers(2, 12, size=(2, 30), dtype=np.int32)
    whole = model({"characters": rows})["logits"].numpy()
    windows = [twin({"characters": rows[:, i : i + 10]})["logits"].numpy() for i in (0, 10, 20)]
    np.testing.assert_allclose(np.concatenate(windows, axis=1), whole, atol=1e-5)


def test_consecutive_batching_trains_stateful_and_exports_stateless(tmp_path):
    text_file = tmp_path / "corpus.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    run_dir = tmp_path / "run"
    argv = ["--task", "charlm", "--batching", "consecutive", "--text", text_file]
    argv += ["--run-dir", run_dir, "--units", "8", "--epochs", "2", "--batch-size", "8"]
    argv += ["--sequence-length", "20", "--sample-every", "0"]
    assert train.main([str(a) for a in argv]) == 0
    run, _ = finished_run(run_dir)
    model = load_trained_model(run)
    assert all(layer.stateful for layer in model.layers if hasattr(layer, "stateful"))
    assert export_main([str(run_dir)]) == 0
    report = json.loads((run_dir / "export" / "parity.json").read_text())
    assert report["ok"] and all(g["fused"] for g in report["graphs"])


def test_generate_refuses_a_negative_seed(tmp_path, cli_error):
    cli_error(generate.main, [tmp_path, "--seed", "-1"], "argument --seed: must be an integer >= 0")


def test_model_loads_with_plain_keras_in_a_fresh_process(lm_run, tmp_path):
    """``import keras; keras.models.load_model(path)``, nothing of ours imported (Keras imports
    no module of another package while loading): the file names Keras's classes only."""
    run_dir, _ = lm_run
    assert foreign_classes(run_dir / "model.keras") == []
    code = (
        "import sys, keras\n"
        "model = keras.models.load_model(sys.argv[1])\n"
        "assert model.compiled and not [m for m in sys.modules if m.startswith('keras_rnn')]\n"
        "print(model.name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(run_dir / "model.keras")],
        cwd=tmp_path,  # not the repository: our packages are not on the path
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "char_lm"
