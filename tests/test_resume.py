"""Resuming a run: --resume after SIGKILL, Ctrl-C and early stopping continues exactly (the
same numbers as a run never interrupted), and what --resume refuses."""

import csv
import itertools
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_rnn import train
from tests.conftest import REPO, assert_user_error, run_module


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
