"""python -m keras_rnn.train end to end on tiny configs: the run directory, refusals and
bad input (resuming: test_resume.py)."""

import collections
import json
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

from keras_rnn import train
from tests.conftest import REPO, TINY_TRAINING, assert_user_error, run_module


@pytest.fixture
def tiny_run(trained_run):
    return trained_run("gru")


def test_saved_model_reproduces_the_test_rmse(tiny_run):
    from keras_rnn.config import config_from_dict
    from keras_rnn.tasks.sine import task as sine

    metrics = json.loads((tiny_run / "metrics.json").read_text())
    config = config_from_dict(
        sine.Config, json.loads((tiny_run / "config.json").read_text())["config"]
    )
    data = sine.make_datasets(config)
    model = keras.models.load_model(tiny_run / "model.keras")
    inputs = sine.windows(data.series, config.window, data.test_start, len(data.series))
    predicted = model.predict({"window": inputs}, verbose=0)["next_value"][:, 0]
    assert sine.rmse(predicted, data.series[data.test_start :]) == pytest.approx(
        metrics["test_rmse"], rel=1e-5
    )


def test_same_seed_same_metrics(tiny_run, tmp_path):
    assert train.main(["--cell", "gru", "--run-dir", str(tmp_path / "again"), *TINY_TRAINING]) == 0
    first = json.loads((tiny_run / "metrics.json").read_text())
    second = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert first == second


@pytest.mark.slow
def test_fit_traces_each_step_once(tmp_path, monkeypatch):
    """The optimizer's and the metrics' variables exist before ``fit``: made in its first
    trace instead, they make tf.function trace the train step a second time."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traces = collections.Counter()

    def counted(step: str):
        original = getattr(TensorFlowTrainer, step)

        def step_function(model, data):
            traces[step] += 1  # once per trace: tf.function calls the Python function
            return original(model, data)

        return step_function

    for step in ("train_step", "test_step"):
        monkeypatch.setattr(TensorFlowTrainer, step, counted(step))
    assert train.main(["--run-dir", str(tmp_path / "run"), *TINY_TRAINING]) == 0
    assert traces == {"train_step": 1, "test_step": 1}


def test_existing_run_is_kept_without_force(tiny_run, cli_error):
    before = (tiny_run / "metrics.json").read_bytes()
    cli_error(
        train.main, ["--cell", "gru", "--run-dir", tiny_run, *TINY_TRAINING], "exists", "--force"
    )
    assert (tiny_run / "metrics.json").read_bytes() == before


def test_force_replaces_a_run(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    (run_dir / "checkpoints" / "stale.weights.h5").write_text("old")  # inside a run's folder
    assert train.main(["--run-dir", str(run_dir), "--force", "--tensorboard", *TINY_TRAINING]) == 0
    assert not (run_dir / "checkpoints" / "stale.weights.h5").exists()
    assert json.loads((run_dir / "config.json").read_text())["config"]["cell"] == "lstm"
    assert (run_dir / "metrics.json").is_file()
    assert list((run_dir / "tensorboard").rglob("events.out.tfevents.*"))


def test_force_leaves_what_is_not_a_run_alone(tiny_run, tmp_path, cli_error):
    """--force deletes only a run directory of ours: not a folder of the user's files, not a
    run holding a file of the user's, and not the CSV file being read."""
    folder = tmp_path / "some_folder"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep me")
    cli_error(train.main, ["--run-dir", folder, "--force"], "has no config.json written by")
    assert [p.name for p in folder.iterdir()] == ["thesis.tex"]

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    (run_dir / "notes.txt").write_text("keep me")
    cli_error(train.main, ["--run-dir", run_dir, "--force"], "also holds notes.txt")
    assert (run_dir / "notes.txt").read_text() == "keep me" and (run_dir / "model.keras").exists()

    series = write_series(tmp_path, [0.1 * i for i in range(100)], name="data.csv")
    before = series.read_bytes()
    argv = ["--csv", series, "--run-dir", series, "--force"]
    cli_error(train.main, argv, "data.csv is a file", "--force leaves it alone")
    assert series.read_bytes() == before

    inside = run_dir / "plots" / "data.csv"  # inside a folder of ours, which --force deletes
    shutil.copy(series, inside)
    (run_dir / "notes.txt").unlink()
    argv = ["--csv", inside, "--run-dir", run_dir, "--force"]
    cli_error(train.main, argv, "is inside --run-dir", "move the file out first")
    assert inside.read_bytes() == before


def write_series(tmp_path, values, name="series.csv"):
    path = tmp_path / name
    path.write_text("value\n" + "\n".join(str(v) for v in values) + "\n")
    return path


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--task", "poetry"], ["unknown task 'poetry'", "sine"]),
        (["--cell", "rnn"], ["--cell", "invalid choice: 'rnn'"]),
        (["--units", "0"], ["--units must be positive"]),
        (["--units", "many"], ["--units", "invalid int value: 'many'"]),
        (["--batch-size", "-4"], ["--batch-size must be positive"]),
        (["--colour", "red"], ["unrecognized arguments: --colour red"]),
        (["--csv", "missing.csv"], ["CSV file not found: missing.csv"]),
        (["--resume"], ["cannot resume", "no config.json"]),
        (["--threads", "-1"], ["--threads must be >= 0, got -1"]),
    ],
)
def test_bad_arguments(argv, fragments, tmp_path, cli_error):
    cli_error(train.main, ["--run-dir", tmp_path / "run", *argv], *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ([0.1, float("nan"), 0.3], "series.csv:3: value is nan"),
        ([1.0, float("inf")], "series.csv:3: value is inf"),
        (list(range(20)), "series of 20 values is too short"),
    ],
)
def test_bad_series(values, fragment, tmp_path, cli_error):
    csv_path = write_series(tmp_path, values)
    cli_error(train.main, ["--csv", csv_path, "--run-dir", tmp_path / "run"], fragment)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_user_csv_trains(tmp_path):
    values = np.cos(np.arange(200) * 0.3) * 50 + 1000  # far from unit scale: normalised inside
    csv_path = write_series(tmp_path, values)
    run_dir = tmp_path / "run"
    assert train.main(["--csv", str(csv_path), "--run-dir", str(run_dir), *TINY_TRAINING]) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["data"]["kind"] == "csv" and saved["data"]["length"] == 200
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "noise_std" not in metrics and np.isfinite(metrics["test_rmse"])


def test_cli_process_prints_one_line_on_bad_input(tmp_path):
    csv_path = write_series(tmp_path, [1.0, float("nan")])
    result = run_module("keras_rnn.train", "--csv", csv_path, "--run-dir", tmp_path / "run")
    assert_user_error(result.returncode, result.stderr, "NaN and infinity are not allowed")


def test_help_lists_flags_with_defaults():
    result = run_module("keras_rnn.train", "--help")
    assert result.returncode == 0
    for text in ("--cell {simple,lstm,gru}", "--clipnorm", "--resume", "--force", "(default: 10)"):
        assert text in result.stdout


@pytest.mark.parametrize("task", [None, "charlm"])
def test_help_says_whose_hyperparameters_it_lists(task):
    """In its first lines: --task TASK --help shows another task's."""
    result = run_module("keras_rnn.train", *(["--task", task] if task else []), "--help")
    first_lines = " ".join(" ".join(result.stdout.splitlines()[:6]).split())
    assert f"The hyperparameters listed are {task or 'sine'}'s" in first_lines
    assert "--task TASK --help lists those of another task (addition, " in first_lines


@pytest.mark.slow
def test_threads_apply_to_tensorflow_and_are_recorded_apart(tmp_path):
    """--threads is a runtime setting: config.json records it beside the task's config, and
    TensorFlow in the training process runs with it."""
    run_dir = tmp_path / "run"
    probe = (
        "import sys, tensorflow as tf\n"
        "from keras_rnn import train\n"
        "status = train.main(sys.argv[1:])\n"
        "print('threads', tf.config.threading.get_intra_op_parallelism_threads())\n"
        "sys.exit(status)\n"
    )
    argv = ["--threads", "1", "--run-dir", run_dir, *TINY_TRAINING]
    result = subprocess.run(
        [sys.executable, "-c", probe, *map(str, argv)], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "threads 1" in result.stdout.splitlines()
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["runtime"] == {
        "threads": 1,
        "strategy": "default",
        "mixed_precision": False,
        "steps_per_execution": 0,
    }
    assert "threads" not in saved["config"]


def test_steps_per_execution_changes_nothing_learned(tiny_run, tmp_path):
    """Several steps per call from Python (the default: 32) and one step per call train the
    same weights: it is a runtime setting, not a hyperparameter."""
    one_by_one = tmp_path / "one"
    argv = ["--cell", "gru", "--steps-per-execution", "1", "--run-dir", one_by_one]
    assert train.main([*map(str, argv), *TINY_TRAINING]) == 0
    model = keras.models.load_model(tiny_run / "model.keras")
    assert model.steps_per_execution == 32
    batched = model.get_weights()
    stepped = keras.models.load_model(one_by_one / "model.keras").get_weights()
    for a, b in zip(batched, stepped, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cosine_schedule_spans_every_epoch_of_the_pipeline():
    import tensorflow as tf

    from keras_rnn.tasks.sine import Config as SineConfig
    from keras_rnn.trainer import learning_rate

    batches = tf.data.Dataset.range(12).filter(lambda x: x % 2 == 0).batch(2)  # 3, not known
    assert learning_rate(SineConfig(learning_rate=0.1), batches) == 0.1
    config = SineConfig(learning_rate=0.1, epochs=4, learning_rate_schedule="cosine")
    schedule = learning_rate(config, batches)
    rates = [float(schedule(step)) for step in (0, 6, 12)]  # start, half way, the last step
    assert rates == pytest.approx([0.1, 0.05, 0.0], abs=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_default_config_beats_both_baselines(cell, tmp_path):
    """The issue's target: with the defaults, LSTM and GRU beat persistence and linear AR."""
    assert train.main(["--cell", cell, "--run-dir", str(tmp_path / cell)]) == 0
    metrics = json.loads((tmp_path / cell / "metrics.json").read_text())
    assert metrics["test_rmse"] < metrics["linear_rmse"] < metrics["persistence_rmse"]
    assert metrics["test_rmse"] > metrics["noise_std"]  # nothing beats the noise: a sanity bound
