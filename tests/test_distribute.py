"""--strategy: mirrored training on two logical CPU devices, multi-worker training with two
processes on loopback, --resume under both, and the combinations refused before TensorFlow."""

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_rnn import distribute, train
from keras_rnn.errors import UserError
from tests.conftest import REPO, assert_user_error

TINY = ["--units", "4", "--epochs", "3", "--batch-size", "64", "--patience", "0"]

# python -m keras_rnn.train, with PROBE_CPUS logical CPU devices (set before TensorFlow
# initialises, which is why it is a process of its own) and, with PROBE_KILL_AFTER=N, ended
# as SIGKILL would end it once the backup holds N epochs.
PROBE = """
import os, sys
cpus, kill_after = int(os.environ["PROBE_CPUS"]), int(os.environ["PROBE_KILL_AFTER"])
if cpus > 1:
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpus)
if kill_after:
    from keras_rnn import callbacks
    backed_up = callbacks.ExactBackupAndRestore.on_epoch_end
    def on_epoch_end(self, epoch, logs=None):
        backed_up(self, epoch, logs)
        if epoch + 1 == kill_after:
            os._exit(137)
    callbacks.ExactBackupAndRestore.on_epoch_end = on_epoch_end
from keras_rnn import train
sys.exit(train.main(sys.argv[1:]))
"""


def start(argv: list, cpus: int = 1, kill_after: int = 0, **env: str) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "TMPDIR")}
    environ |= {"PROBE_CPUS": str(cpus), "PROBE_KILL_AFTER": str(kill_after), **env}
    return subprocess.Popen(
        [sys.executable, "-c", PROBE, *map(str, argv)],
        cwd=REPO,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(*processes: subprocess.Popen) -> list[tuple[int, str, str]]:
    """Each process's status, stdout and stderr; all are killed if one takes too long."""
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=150)
            results.append((process.returncode, stdout, stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return results


def cluster(count: int) -> list[str]:
    """TF_CONFIG of each of ``count`` workers on free loopback ports."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    addresses = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return [
        json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}})
        for i in range(count)
    ]


def history(run: Path) -> list[dict[str, float]]:
    with (run / "history.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def weights(model_keras: Path) -> list[np.ndarray]:
    return keras.models.load_model(model_keras, compile=False).get_weights()


@pytest.fixture(scope="module")
def killed_mirrored(tmp_path_factory) -> Path:
    """A sine run of 3 epochs under --strategy mirrored on two logical CPU devices, killed
    once its backup held epoch 1."""
    run_dir = tmp_path_factory.mktemp("mirrored") / "run"
    [(status, _, stderr)] = finish(
        start([*TINY, "--strategy", "mirrored", "--run-dir", run_dir], cpus=2, kill_after=1)
    )
    assert status == 137, stderr
    return run_dir


def test_mirrored_training_on_two_logical_devices(killed_mirrored, tmp_path):
    """Two replicas train the run and config.json says so; --resume under the same strategy
    goes on from the backup and finishes the run."""
    saved = json.loads((killed_mirrored / "config.json").read_text())
    assert saved["runtime"]["strategy"] == "mirrored"
    environment = saved["environment"]
    assert (environment["strategy"], environment["replicas"], environment["workers"]) == (
        "MirroredStrategy",
        2,
        1,
    )
    assert [row["epoch"] for row in history(killed_mirrored)] == [0]
    assert not (killed_mirrored / "metrics.json").exists()

    run_dir = tmp_path / "run"
    shutil.copytree(killed_mirrored, run_dir)
    [(status, stdout, stderr)] = finish(
        start(["--run-dir", run_dir, "--resume", "--strategy", "mirrored"], cpus=2)
    )
    assert status == 0, stderr
    assert "resuming: 1 of 3 epochs were done" in stdout.splitlines()
    assert [row["epoch"] for row in history(run_dir)] == [0, 1, 2]
    assert (run_dir / "metrics.json").is_file() and (run_dir / "model.keras").is_file()
    assert not (run_dir / "checkpoints" / "backup").exists()


def test_two_workers_end_equal_and_only_the_chief_writes(tmp_path):
    """Two worker processes on loopback: the chief writes its --run-dir; the other worker
    leaves its own --run-dir alone, trains in a folder of its own, and ends with the same
    weights as the chief's model.keras."""
    chief_config, worker_config = cluster(2)
    argv = [*TINY, "--strategy", "multiworker"]
    chief = start([*argv, "--run-dir", tmp_path / "run"], TF_CONFIG=chief_config)
    other = start(
        [*argv, "--run-dir", tmp_path / "other"],
        TF_CONFIG=worker_config,
        KERAS_RNN_WORKER_RUN_DIR=str(tmp_path / "worker"),
    )
    for status, _, stderr in finish(chief, other):
        assert status == 0, stderr
    run = tmp_path / "run"
    assert (run / "metrics.json").is_file()
    environment = json.loads((run / "config.json").read_text())["environment"]
    assert (environment["strategy"], environment["replicas"], environment["workers"]) == (
        "MultiWorkerMirroredStrategy",
        2,
        2,
    )
    assert not (tmp_path / "other").exists()
    chief_weights = weights(run / "model.keras")
    worker_weights = weights(tmp_path / "worker" / "run" / "model.keras")
    assert len(chief_weights) == len(worker_weights) > 0
    assert all(np.array_equal(a, b) for a, b in zip(chief_weights, worker_weights, strict=True))
    assert history(run) == history(tmp_path / "worker" / "run")


def test_resume_under_two_workers(killed_mirrored, tmp_path):
    """The run killed under the mirrored strategy goes on with two workers (a runtime setting
    may change on --resume): both restore the chief's backup, the chief finishes the run, and
    the other worker's temporary folder is gone."""
    run_dir = tmp_path / "run"
    shutil.copytree(killed_mirrored, run_dir)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    argv = ["--run-dir", run_dir, "--resume", "--strategy", "multiworker"]
    chief_config, worker_config = cluster(2)
    chief = start(argv, TF_CONFIG=chief_config)
    other = start(argv, TF_CONFIG=worker_config, TMPDIR=str(scratch))
    results = finish(chief, other)
    for status, stdout, stderr in results:
        assert status == 0, stderr
        assert "resuming: 1 of 3 epochs were done" in stdout.splitlines()
    assert [row["epoch"] for row in history(run_dir)] == [0, 1, 2]
    assert (run_dir / "metrics.json").is_file()
    assert f"this worker writes into {scratch}/keras-rnn-worker-" in results[1][1]
    assert not list(scratch.glob("keras-rnn-worker-*"))


@pytest.mark.parametrize(
    ("tf_config", "argv", "fragments"),
    [
        (None, ["--strategy", "multiworker"], ["needs TF_CONFIG in the environment"]),
        ("{", [], ["TF_CONFIG is not valid JSON"]),
        ('{"cluster": {"worker": ["h:1"]}}', [], ['needs a "cluster" and a "task"']),
        ('{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}', [], ["'ps' job"]),
        ('{"cluster": {"worker": ["h"]}, "task": {"type": "worker", "index": 0}}', [], ["h'"]),
        (
            '{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}',
            [],
            ["task index 2 is not one of the 2 worker addresses"],
        ),
        (
            '{"cluster": {"worker": ["h:1"]}, "task": {"type": "evaluator", "index": 0}}',
            [],
            ["task type 'evaluator' is not a job of its cluster"],
        ),
        (
            None,
            ["--task", "charlm", "--batching", "consecutive", "--strategy", "mirrored"],
            ["--strategy mirrored cannot train this run", "--batching random"],
        ),
        (
            None,
            ["--task", "charlm", "--strategy", "mirrored"],  # consecutive is charlm's default
            ["--strategy mirrored cannot train this run", "--batching random"],
        ),
        (
            None,
            ["--strategy", "mirrored", "--steps-per-execution", "4"],
            ["--steps-per-execution 4 does not run under --strategy mirrored", "19246"],
        ),
    ],
)
def test_refusals_come_before_tensorflow(tf_config, argv, fragments, tmp_path):
    """One error line, exit status 2, no run directory, and TensorFlow never imported."""
    blocked = (
        "import sys\n"
        "sys.modules['tensorflow'] = sys.modules['keras'] = None  # import raises\n"
        "from keras_rnn import train\n"
        "sys.exit(train.main(sys.argv[1:]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
        argv = [*argv, "--strategy", "multiworker"]
    result = subprocess.run(
        [sys.executable, "-c", blocked, *argv, "--run-dir", str(tmp_path / "run")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_user_error(result.returncode, result.stderr, *fragments)
    assert not (tmp_path / "run").exists()


def test_a_resumed_consecutive_charlm_run_is_refused_distribution(tmp_path, cli_error):
    from keras_rnn.tasks.charlm import Config as CharLMConfig

    run_dir = tmp_path / "lm"
    run_dir.mkdir()
    config = CharLMConfig(units=16, batching="consecutive")
    (run_dir / "config.json").write_text(json.dumps({"config": config.to_dict()}))
    argv = ["--run-dir", run_dir, "--resume", "--strategy", "mirrored"]
    cli_error(train.main, argv, "--batching consecutive carries each stream's state")


@pytest.mark.parametrize(
    ("cluster_spec", "task", "position"),
    [
        ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, (0, 2, True)),
        ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, (1, 2, False)),
        ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "chief", "index": 0}, (0, 2, True)),
        ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "worker", "index": 0}, (1, 2, False)),
    ],
)
def test_the_chief_is_task_chief_or_else_worker_0(cluster_spec, task, position):
    environ = {"TF_CONFIG": json.dumps({"cluster": cluster_spec, "task": task})}
    found = distribute.worker("multiworker", environ)
    assert (found.index, found.count, found.chief) == position
    assert distribute.worker("mirrored", environ) == distribute.Worker()  # TF_CONFIG unread


def test_index_must_be_an_integer():
    environ = {
        "TF_CONFIG": '{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": true}}'
    }
    with pytest.raises(UserError, match="task index True"):
        distribute.worker("multiworker", environ)
