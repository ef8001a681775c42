"""python -m keras_rnn.train: train one task's model into a run directory.

    python -m keras_rnn.train --task sine --cell lstm [--run-dir runs/NAME] [--resume | --force]

Writes the run directory of DESIGN.md section 3 and prints the test metrics and where
everything went. User mistakes print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out

import keras
import numpy as np
import tensorflow as tf

from keras_rnn import plots
from keras_rnn.callbacks import BestWeights, ResumableEarlyStopping
from keras_rnn.config import TrainConfig, add_config_flags, config_from_dict
from keras_rnn.errors import UserError
from keras_rnn.runs import RunDir, atomic_save, prepare_run_dir, read_json, write_json
from keras_rnn.tasks import TASKS, load_task

RESUMABLE_FLAGS = {"epochs", "patience", "tensorboard"}  # what --resume may change


class _Parser(argparse.ArgumentParser):
    """Argument errors become ``UserError``: one line and exit status 2, like every other."""

    def error(self, message: str):
        raise UserError(message)


def parse_args(argv: list[str] | None) -> tuple[Any, TrainConfig, argparse.Namespace]:
    """Return the task module, the resolved config and the run-control arguments."""
    pre = _Parser(add_help=False)
    pre.add_argument("--task", default="sine")
    known, _ = pre.parse_known_args(argv)
    task = load_task(known.task)

    parser = _Parser(
        prog="python -m keras_rnn.train",
        description="Train a recurrent model; write config, checkpoints, model, metrics, plots.",
    )
    parser.add_argument("--task", choices=TASKS, default="sine", help="task (default: sine)")
    parser.add_argument("--run-dir", help="run directory (default: runs/TASK-CELL)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run")
    parser.add_argument("--force", action="store_true", help="delete an existing run first")
    add_config_flags(parser, task.Config)
    args = parser.parse_args(argv)

    control = {"task", "run_dir", "resume", "force"}
    explicit = {k: v for k, v in vars(args).items() if k not in control}
    cell = explicit.get("cell", task.Config.cell)
    args.run_dir = Path(args.run_dir or f"runs/{args.task}-{cell}")
    if args.resume:
        saved = read_json(args.run_dir / "config.json")["config"]
        for name, value in explicit.items():
            if name not in RESUMABLE_FLAGS and saved.get(name) != value:
                changeable = ", ".join(f"--{flag}" for flag in sorted(RESUMABLE_FLAGS))
                raise UserError(
                    f"--{name.replace('_', '-')} {value} differs from the run's {saved.get(name)}: "
                    f"a resumed run keeps its config (it may change {changeable})"
                )
        values = {**saved, **explicit}
    else:
        values = {**explicit, "task": args.task}
    return task, config_from_dict(task.Config, values), args


def environment() -> dict[str, Any]:
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "gpus": [gpu.name for gpu in gpus],
        "cudnn": bool(gpus),  # every layer is built cuDNN-eligible; Keras uses it on a GPU
        "mixed_precision": keras.mixed_precision.global_policy().name != "float32",
        "strategy": tf.distribute.get_strategy().__class__.__name__,
    }


def _history_state(run: RunDir, first_epoch: int) -> tuple[float, int]:
    """Keep history.csv rows before ``first_epoch`` (the restored one) and return the best
    val_loss so far and the epochs since it, for the resumed callbacks."""
    if not run.history_csv.is_file():
        return math.inf, 0
    with run.history_csv.open(newline="") as f:
        rows = [row for row in csv.DictReader(f) if int(row["epoch"]) < first_epoch]
    if rows:
        fields = list(rows[0])
        with run.history_csv.open("w", newline="") as f:
            writer = csv.DictWriter(f, fields)
            writer.writeheader()
            writer.writerows(rows)
    else:
        run.history_csv.unlink()
    losses = [float(row["val_loss"]) for row in rows if row.get("val_loss")]
    if not losses:
        return math.inf, 0
    best_index = int(np.argmin(losses))
    return losses[best_index], len(losses) - 1 - best_index


def _restored_epoch(run: RunDir) -> int:
    metadata = run.backup / "training_metadata.json"
    return json.loads(metadata.read_text())["epoch"] if metadata.is_file() else 0


def train(task: Any, config: TrainConfig, run: RunDir, resume: bool) -> dict[str, Any]:
    """Fit, evaluate and write everything into ``run``; return the test metrics."""
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    data = task.make_datasets(config)
    model = task.build_model(config, data)
    optimizer = keras.optimizers.Adam(config.learning_rate, global_clipnorm=config.clipnorm or None)
    model.compile(optimizer=optimizer, **task.compile_args(config, data))
    if not resume:
        write_json(
            run.config_json,
            {"config": config.to_dict(), "data": data.source, "environment": environment()},
        )
        atomic_save(run.initial_weights, model.save_weights)
    best, wait = _history_state(run, _restored_epoch(run)) if resume else (math.inf, 0)
    callbacks = [
        keras.callbacks.BackupAndRestore(
            run.backup, double_checkpoint=True, delete_checkpoint=False
        ),
        keras.callbacks.CSVLogger(str(run.history_csv), append=resume),
        BestWeights(run.best_weights, best=best),
    ]
    if config.patience:
        callbacks.append(
            ResumableEarlyStopping(
                monitor="val_loss", patience=config.patience, best=best, wait=wait
            )
        )
    if config.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run.tensorboard)))
    print(f"data: {json.dumps(data.source)}")
    print(f"model: {model.name}, {model.count_params():,} parameters, run directory {run.path}")
    model.fit(
        data.train,
        validation_data=data.val,
        epochs=config.epochs,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles (seeded)
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if run.best_weights.is_file():
        model.load_weights(run.best_weights)
    atomic_save(run.model_keras, model.save)
    untrained = task.build_model(config, data)
    untrained.load_weights(run.initial_weights)
    metrics = task.evaluate(model, untrained, data, config, run)
    plots.plot_history(run.history_csv, run.plots / "loss.png")
    write_json(run.metrics_json, metrics)
    for leftover in sorted(run.backup.glob("*")):
        leftover.unlink()
    run.backup.rmdir() if run.backup.is_dir() else None
    return metrics


def main(argv: list[str] | None = None) -> int:
    try:
        task, config, args = parse_args(argv)
        run = prepare_run_dir(args.run_dir, force=args.force, resume=args.resume)
        metrics = train(task, config, run, resume=args.resume)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print()
    print(task.format_metrics(metrics, config))
    print()
    print(f"run directory: {run.path}")
    for label, path in (
        ("model", run.model_keras),
        ("metrics", run.metrics_json),
        ("history", run.history_csv),
        ("plots", run.plots),
    ):
        print(f"  {label + ':':9} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
