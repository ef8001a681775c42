"""python -m keras_rnn.train end to end on tiny configs: the run directory, refusals,
bad input, and resuming after a SIGKILL."""

import csv
import itertools
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def started_run(path, config) -> None:
    """A run directory as training leaves it before its first epoch ends."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"config": config.to_dict()}))


def test_resume_reads_the_task_from_the_run(tmp_path, cli_error, monkeypatch):
    from keras_rnn.tasks.charlm import Config as CharLMConfig
    from keras_rnn.tasks.tagging import Config as TaggingConfig

    run_dir = tmp_path / "lm"
    started_run(run_dir, CharLMConfig(units=16, batching="consecutive"))
    argv = ["--run-dir", str(run_dir), "--resume", "--epochs", "5", "--threads", "3"]
    config, args = train.parse_args(argv)  # runtime settings may change on resume
    assert args.runtime.threads == 3 and not hasattr(config, "threads")
    assert (config.task, config.units, config.batching, config.epochs) == (
        "charlm",
        16,
        "consecutive",
        5,
    )
    argv = ["--task", "sine", "--run-dir", run_dir, "--resume"]
    cli_error(train.main, argv, "--task sine differs from the task of", "charlm")

    monkeypatch.chdir(tmp_path)  # no --run-dir: the run that --task and --cell name by default
    started_run(tmp_path / "runs" / "tagging-gru", TaggingConfig(cell="gru"))
    config, args = train.parse_args(["--task", "tagging", "--cell", "gru", "--resume"])
    assert config.task == "tagging" and args.run_dir == Path("runs/tagging-gru")
    cli_error(train.main, ["--resume"], "cannot resume runs/sine-lstm", "no config.json")


def test_resume_and_export_read_a_config_json_from_before_directions_were_opt_in(tmp_path):
    """Such a file holds bidirectional and merge_mode, which charlm no longer takes."""
    from keras_rnn.runs import finished_run
    from keras_rnn.tasks.charlm import Config as CharLMConfig

    run_dir = tmp_path / "lm"
    old = {**CharLMConfig(units=16).to_dict(), "bidirectional": False, "merge_mode": "concat"}
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"config": old}))
    config, _ = train.parse_args(["--run-dir", str(run_dir), "--resume"])
    assert config == CharLMConfig(units=16)
    for name in ("metrics.json", "model.keras"):  # finished, as export and evaluation read it
        (run_dir / name).write_text("{}")
    assert finished_run(run_dir)[1] == CharLMConfig(units=16)


@pytest.mark.parametrize("finished", [False, True])
def test_force_with_resume_is_a_contradiction_on_any_run(finished, tmp_path, cli_error):
    """Not "pass --force to retrain" to a user who passed it; the run stays as it was."""
    from keras_rnn.tasks.sine import Config as SineConfig

    run_dir = tmp_path / "run"
    started_run(run_dir, SineConfig())
    if finished:
        (run_dir / "metrics.json").write_text("{}")
    argv = ["--run-dir", run_dir, "--force", "--resume"]
    cli_error(train.main, argv, "--force and --resume contradict each other: pick one")
    assert (run_dir / "config.json").is_file() and (run_dir / "metrics.json").exists() == finished


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


def train_until_killed(argv: list, run_dir, epochs_done: int) -> None:
    """Train in a subprocess and SIGKILL it once the backup holds ``epochs_done`` epochs (the
    kill lands somewhere in a later epoch; a resumed run must not care where)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_rnn.train", *map(str, argv)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metadata = run_dir / "checkpoints" / "backup" / "training_metadata.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if json.loads(metadata.read_text())["epoch"] >= epochs_done:
                break
        except (OSError, ValueError):  # not written yet, or caught mid-write
            pass
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.slow
def test_resume_after_sigkill(tmp_path):
    """Kill training mid-run with SIGKILL, resume, and finish with every epoch logged once,
    the learning-rate schedule going on from the step where it stopped."""
    run_dir = tmp_path / "run"
    epochs = 12
    argv = [
        "--learning-rate-schedule",
        "cosine",
        "--run-dir",
        run_dir,
        "--units",
        "8",
        "--batch-size",
        "4",
        "--epochs",
        epochs,
        "--patience",
        "0",
    ]
    train_until_killed(argv, run_dir, epochs_done=2)
    history = run_dir / "history.csv"

    refused = run_module("keras_rnn.train", *argv)
    assert_user_error(refused.returncode, refused.stderr, "--resume to continue it")

    changed = run_module("keras_rnn.train", *argv[:-4], "--units", "16", "--resume")
    assert_user_error(changed.returncode, changed.stderr, "--units 16 differs from the run's 8")

    resumed = run_module("keras_rnn.train", *argv, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    done = re.search(r"^resuming: (\d+) of 12 epochs were done$", resumed.stdout, re.M)
    assert done and int(done[1]) >= 2  # continued from the backup, not from scratch
    with history.open() as f:
        rows = list(csv.DictReader(f))
    assert [int(row["epoch"]) for row in rows] == list(range(epochs))
    rates = [float(row["learning_rate"]) for row in rows]
    assert all(a > b for a, b in itertools.pairwise(rates)), rates  # no restart after --resume
    assert rates[-1] == pytest.approx(0.0, abs=1e-9)  # cosine ends at zero after all epochs
    assert (run_dir / "metrics.json").is_file()
    assert not (run_dir / "checkpoints" / "backup").exists()


CONLL = "".join(
    f"the DET\n{word} {tag}\nruns VERB\n\n"
    for word, tag in [("dog", "NOUN"), ("cat", "NOUN"), ("big", "ADJ"), ("old", "ADJ")] * 30
)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sine", "tagging"])
def test_resumed_run_repeats_the_uninterrupted_one(task, tmp_path):
    """Killed after some epochs and resumed with ``--run-dir R --resume`` alone (the task comes
    from config.json), a run with shuffling and dropout logs the same numbers as one never
    interrupted, bit for bit: same machine, same operations in the same order (TensorFlow's op
    determinism is on), so there is no round-off to allow for. Each row has the learning rate
    (the optimizer's step count), early stopping's count and the best weights depend on."""
    conll = tmp_path / "data.conll"
    conll.write_text(CONLL)
    data = ["--conll", conll, "--batch-size", "8"] if task == "tagging" else ["--batch-size", "4"]
    argv = ["--task", task, *data, "--units", "8", "--layers", "2", "--dropout", "0.5"]
    argv += ["--epochs", "8", "--patience", "3", "--learning-rate-schedule", "cosine"]
    whole = tmp_path / "whole"
    reference = run_module("keras_rnn.train", *argv, "--run-dir", whole)
    assert reference.returncode == 0, reference.stderr

    run_dir = tmp_path / "killed"
    train_until_killed([*argv, "--run-dir", run_dir], run_dir, epochs_done=2)
    resumed = run_module("keras_rnn.train", "--run-dir", run_dir, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    done = re.search(r"^resuming: (\d+) of 8 epochs were done$", resumed.stdout, re.M)
    assert done and int(done[1]) >= 2  # from the backup

    def history(run):
        with (run / "history.csv").open() as f:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]

    assert history(run_dir) == history(whole)
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (run_dir, whole)]
    assert metrics[0] == metrics[1]
    weights = [
        keras.models.load_model(run / "model.keras", compile=False).get_weights()
        for run in (run_dir, whole)
    ]
    assert all(np.array_equal(a, b) for a, b in zip(*weights, strict=True))


@pytest.mark.slow
def test_resume_after_early_stopping_trains_no_further(tmp_path, monkeypatch):
    """Stopped early, then killed before metrics.json (here: evaluation fails), a resumed run
    goes straight to evaluation instead of training one epoch more."""
    from keras_rnn.tasks.sine import task as sine

    argv = ["--units", "4", "--batch-size", "64", "--epochs", "40", "--patience", "1"]
    argv += ["--learning-rate", "0.2"]  # val_loss soon stops improving
    assert train.main([*argv, "--run-dir", str(tmp_path / "whole")]) == 0

    class Killed(Exception):
        pass

    def killed(*args):
        raise Killed

    with monkeypatch.context() as patch, pytest.raises(Killed):
        patch.setattr(sine, "evaluate", killed)
        train.main([*argv, "--run-dir", str(tmp_path / "killed")])
    assert train.main(["--run-dir", str(tmp_path / "killed"), "--resume"]) == 0
    history = [(tmp_path / run / "history.csv").read_text() for run in ("whole", "killed")]
    assert history[0] == history[1] and len(history[0].splitlines()) < 1 + 40  # stopped early


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


@pytest.mark.slow
def test_ctrl_c_prints_the_resume_command_and_exits_130(tmp_path):
    """SIGINT during training: status 130, one line on stderr with the exact command that
    continues the run, no traceback; that command then finishes the run."""
    run_dir = tmp_path / "run"
    argv = ["--run-dir", run_dir, "--units", "4", "--batch-size", "64", "--epochs", "1000"]
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_rnn.train", *map(str, argv), "--patience", "0"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # SIGINT as a terminal delivers it, even where this test runs with it ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    history = run_dir / "history.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if history.is_file() and len(history.read_text().splitlines()) >= 2:  # an epoch done
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    command = f"python -m keras_rnn.train --run-dir {run_dir} --resume"
    assert stderr.splitlines() == [f"interrupted: continue the run with: {command}"]
    assert not (run_dir / "metrics.json").exists()

    with history.open() as f:
        done = len(list(csv.DictReader(f)))
    resumed = run_module(*command.split()[2:], "--epochs", done + 2)  # not all 1000 epochs
    assert resumed.returncode == 0, resumed.stderr
    assert (run_dir / "metrics.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damaged", "content", "fragment"),
    [
        ("history.csv", "epoch,loss,val_loss\nthree,0.5,0.4\n", "history.csv is damaged"),
        ("checkpoints/backup/training_metadata.json", "{", "is not valid JSON"),
        ("checkpoints/backup/training_metadata.json", "{}", "holds no epoch number"),
        ("checkpoints/backup/random_state.json", "[1, 2", "is not valid JSON"),
    ],
)
def test_a_damaged_backup_is_one_line_on_resume(damaged, content, fragment, tmp_path):
    """A file --resume reads that is damaged is named in one error line, exit 2."""
    run_dir = tmp_path / "run"
    argv = ["--run-dir", run_dir, "--units", "4", "--batch-size", "8", "--epochs", "40"]
    train_until_killed([*argv, "--patience", "0"], run_dir, epochs_done=1)
    (run_dir / damaged).write_text(content)
    result = run_module("keras_rnn.train", "--run-dir", run_dir, "--resume")
    assert_user_error(result.returncode, result.stderr, Path(damaged).name, fragment)
