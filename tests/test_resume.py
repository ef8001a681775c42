"""Resuming a run: --resume after SIGKILL, Ctrl-C and early stopping continues exactly (the
same numbers as a run never interrupted), and what --resume refuses."""

import csv
import functools
import itertools
import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_rnn import train
from tests.conftest import REPO, run_module


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


CONLL = "".join(
    f"the DET\n{word} {tag}\nruns VERB\n\n"
    for word, tag in [("dog", "NOUN"), ("cat", "NOUN"), ("big", "ADJ"), ("old", "ADJ")] * 30
)


def resumable_flags(task: str, folder: Path) -> list:
    """Training flags of a run with everything a resumed run must pick up where it stopped:
    shuffling, dropout, a cosine learning-rate schedule and early stopping (a tagging run
    reads its sentences from a file written into ``folder``)."""
    if task == "tagging":
        conll = folder / "data.conll"
        conll.write_text(CONLL)
        data = ["--conll", conll, "--batch-size", "8"]
    else:
        data = ["--batch-size", "4"]
    return [
        *["--task", task, *data, "--units", "8", "--layers", "2", "--dropout", "0.5"],
        *["--epochs", "8", "--patience", "3", "--learning-rate-schedule", "cosine"],
    ]


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Callable[[str], tuple[list, Path]]:
    """``killed(task)``: the flags and the run directory of a run of ``resumable_flags(task)``
    SIGKILLed once its backup held 2 epochs, made once for the module. Tests must not modify
    the run (copy it first)."""

    @functools.cache
    def kill(task: str) -> tuple[list, Path]:
        folder = tmp_path_factory.mktemp(f"killed-{task}")
        flags, run_dir = resumable_flags(task, folder), folder / "run"
        train_until_killed([*flags, "--run-dir", run_dir], run_dir, epochs_done=2)
        return flags, run_dir

    return kill


@pytest.fixture(scope="module")
def resumed(killed, tmp_path_factory) -> Callable[[str], tuple[Path, str]]:
    """``resumed(task)``: a copy of ``killed(task)``'s run, resumed with ``--run-dir R
    --resume`` alone (the task comes from config.json) in a new process, and what that
    printed; made once for the module."""

    @functools.cache
    def resume(task: str) -> tuple[Path, str]:
        run_dir = tmp_path_factory.mktemp(f"resumed-{task}") / "run"
        shutil.copytree(killed(task)[1], run_dir)
        result = run_module("keras_rnn.train", "--run-dir", run_dir, "--resume")
        assert result.returncode == 0, result.stderr
        return run_dir, result.stdout

    return resume


def epochs_done_before(stdout: str) -> int:
    """The epochs a resumed run says the backup held."""
    done = re.search(r"^resuming: (\d+) of 8 epochs were done$", stdout, re.M)
    assert done, stdout
    return int(done[1])


def history(run_dir: Path) -> list[dict[str, float]]:
    """The rows of the run's history.csv, as numbers."""
    with (run_dir / "history.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.slow
def test_resume_after_sigkill(killed, resumed, tmp_path, cli_error):
    """Kill training mid-run with SIGKILL, resume, and finish with every epoch logged once,
    the learning-rate schedule going on from the step where it stopped."""
    flags, killed_run = killed("sine")
    copy = tmp_path / "run"
    shutil.copytree(killed_run, copy)
    cli_error(train.main, [*flags, "--run-dir", copy], "--resume to continue it")
    changed = ["--run-dir", copy, "--units", "16", "--resume"]
    cli_error(train.main, changed, "--units 16 differs from the run's 8")

    run_dir, stdout = resumed("sine")
    assert epochs_done_before(stdout) >= 2  # continued from the backup, not from scratch
    rows = history(run_dir)
    assert [row["epoch"] for row in rows] == list(range(8))  # val_loss kept improving
    rates = [row["learning_rate"] for row in rows]
    assert all(a > b for a, b in itertools.pairwise(rates)), rates  # no restart after --resume
    assert rates[-1] == pytest.approx(0.0, abs=1e-9)  # cosine ends at zero after all epochs
    assert (run_dir / "metrics.json").is_file()
    assert not (run_dir / "checkpoints" / "backup").exists()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["sine", "tagging"])
def test_resumed_run_repeats_the_uninterrupted_one(task, killed, resumed, tmp_path):
    """Killed after some epochs and resumed, a run with shuffling and dropout logs the same
    numbers as one never interrupted (trained here in this process), bit for bit: same
    machine, same operations in the same order (TensorFlow's op determinism is on), so there
    is no round-off to allow for. Each row has the learning rate (the optimizer's step count),
    early stopping's count and the best weights depend on."""
    flags, _ = killed(task)
    whole = tmp_path / "whole"
    assert train.main([*map(str, flags), "--run-dir", str(whole)]) == 0
    run_dir, stdout = resumed(task)
    assert epochs_done_before(stdout) >= 2  # from the backup

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

    class Killed(Exception):
        pass

    def kill(*args):
        raise Killed

    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch, pytest.raises(Killed):
        patch.setattr(sine, "evaluate", kill)
        train.main([*argv, "--run-dir", str(run_dir)])
    trained = (run_dir / "history.csv").read_text()
    assert len(trained.splitlines()) < 1 + 40  # stopped early
    assert train.main(["--run-dir", str(run_dir), "--resume"]) == 0
    assert (run_dir / "history.csv").read_text() == trained
    assert (run_dir / "metrics.json").is_file()


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
    history_csv = run_dir / "history.csv"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if history_csv.is_file() and len(history_csv.read_text().splitlines()) >= 2:  # an epoch
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    command = f"python -m keras_rnn.train --run-dir {run_dir} --resume"
    assert stderr.splitlines() == [f"interrupted: continue the run with: {command}"]
    assert not (run_dir / "metrics.json").exists()

    done = len(history(run_dir))
    arguments = shlex.split(command)[3:]  # after python -m keras_rnn.train
    assert train.main([*arguments, "--epochs", str(done + 2)]) == 0  # not all 1000 epochs
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
def test_a_damaged_backup_is_one_line_on_resume(
    damaged, content, fragment, killed, tmp_path, cli_error
):
    """A file --resume reads that is damaged is named in one error line, exit 2."""
    run_dir = tmp_path / "run"
    shutil.copytree(killed("sine")[1], run_dir)
    (run_dir / damaged).write_text(content)
    cli_error(train.main, ["--run-dir", run_dir, "--resume"], Path(damaged).name, fragment)
