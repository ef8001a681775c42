"""The training loop behind ``python -m keras_rnn.train``: fit with resumable callbacks,
then save the model, metrics and plots into the run directory."""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rnn import distribute, plots, precision
from keras_rnn.callbacks import (
    BestWeights,
    EpochProgress,
    ExactBackupAndRestore,
    LogLearningRate,
    ResumableEarlyStopping,
    fix_keras_save_cache,
)
from keras_rnn.config import RuntimeConfig, TrainConfig
from keras_rnn.distribute import Worker
from keras_rnn.epochs import FeedEpoch
from keras_rnn.errors import UserError
from keras_rnn.layers import cudnn_report
from keras_rnn.runs import (
    RunDir,
    atomic_save,
    atomic_write_bytes,
    prepare_run_dir,
    read_json,
    write_json,
)
from keras_rnn.tasks import Task, TaskData, load_task


def environment(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    position: Worker,
    policy: str = "float32",
) -> dict[str, Any]:
    """Library versions, accelerator facts (with whether cuDNN was there and which of
    ``model``'s recurrent layers used it), how the run was distributed (the strategy's
    class, its replicas and workers) and the dtype policy it trained in, recorded in
    config.json."""
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "gpus": [gpu.name for gpu in gpus],
        "cudnn": cudnn_report(model, gpu=bool(gpus)),
        "mixed_precision": policy != "float32",
        "dtype_policy": policy,
        "strategy": distribute.strategy_name(strategy),
        "replicas": strategy.num_replicas_in_sync,
        "workers": position.count,
    }


def _history_state(run: RunDir, first_epoch: int) -> tuple[float, int]:
    """Keep history.csv rows before ``first_epoch`` (the restored one) and return the best
    val_loss so far and the epochs since it, for the resumed callbacks."""
    if not run.history_csv.is_file():
        return math.inf, 0
    try:
        with run.history_csv.open(newline="", encoding="utf-8") as f:
            rows = [row for row in csv.DictReader(f) if int(row["epoch"]) < first_epoch]
        losses = [float(row["val_loss"]) for row in rows if row.get("val_loss")]
    except (KeyError, TypeError, ValueError, csv.Error) as error:  # UnicodeDecodeError too
        raise UserError(
            f"{run.history_csv} is damaged ({error}): the run cannot be resumed; retrain it "
            "with --force"
        ) from None
    if rows:
        text = io.StringIO()
        writer = csv.DictWriter(text, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(run.history_csv, text.getvalue().encode())
    else:
        run.history_csv.unlink()
    if not losses:
        return math.inf, 0
    best_index = int(np.argmin(losses))
    return losses[best_index], len(losses) - 1 - best_index


def _restored_epoch(run: RunDir) -> int:
    metadata = run.backup / "training_metadata.json"
    if not metadata.is_file():
        return 0
    saved = read_json(metadata)  # damaged: one line naming the file
    epoch = saved.get("epoch") if isinstance(saved, dict) else None
    if not isinstance(epoch, int):
        raise UserError(f"{metadata} holds no epoch number: the run cannot be resumed")
    return epoch


def learning_rate(
    config: TrainConfig, train: tf.data.Dataset
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """Adam's rate: constant, or a cosine decay to zero over ``config.epochs`` passes over
    ``train``. The decay follows the optimizer's step count, which ``--resume`` restores."""
    if config.learning_rate_schedule == "constant":
        return config.learning_rate
    steps = int(train.cardinality())
    if steps == tf.data.UNKNOWN_CARDINALITY:
        steps = int(train.reduce(0, lambda count, _: count + 1))
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=config.epochs * steps
    )


def compiled_model(
    task: Task,
    config: TrainConfig,
    data: TaskData,
    runtime: RuntimeConfig,
    strategy: tf.distribute.Strategy,
) -> keras.Model:
    """The task's model with Adam and the task's loss, built and compiled inside the scope of
    ``strategy`` (made from ``runtime.strategy``), so that its variables are the strategy's."""
    with strategy.scope():
        model = task.build_model(config, data)
        optimizer = keras.optimizers.Adam(
            learning_rate(config, data.train), global_clipnorm=config.clipnorm or None
        )
        model.compile(
            optimizer=optimizer,
            steps_per_execution=runtime.steps_per_call(),
            **task.compile_args(config, data),
        )
    if runtime.strategy != "default":
        distribute.fix_keras(model)
    return model


def train(
    task: Task,
    config: TrainConfig,
    data: TaskData,
    run: RunDir,
    resume: bool,
    runtime: RuntimeConfig | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> dict[str, Any]:
    """Fit on ``data`` under ``strategy`` (made from ``runtime`` by ``run_training``; None:
    no distribution) in the dtype policy ``runtime`` asks for, then save and evaluate the
    model in float32 and write everything into ``run``; return the test metrics."""
    runtime = runtime or RuntimeConfig()
    strategy = strategy or tf.distribute.get_strategy()
    policy = training_policy(runtime)
    with precision.dtype_policy(policy):
        model = _fit(task, config, data, run, resume, runtime, strategy, policy)
    if run.best_weights.is_file():
        model.load_weights(run.best_weights)
    with precision.dtype_policy("float32"):
        if policy != "float32":  # the same weights in a float32 model: what export serves
            trained, model = model, task.build_model(config, data)
            model.set_weights(trained.get_weights())
        atomic_save(run.model_keras, model.save)
        untrained = task.build_model(config, data)
        untrained.load_weights(run.initial_weights)
        metrics = task.evaluate(model, untrained, data, config, run)
    plots.plot_history(run.history_csv, run.plots / "loss.png")
    write_json(run.metrics_json, metrics)
    shutil.rmtree(run.backup, ignore_errors=True)  # finished: nothing left to resume
    return metrics


def _fit(
    task: Task,
    config: TrainConfig,
    data: TaskData,
    run: RunDir,
    resume: bool,
    runtime: RuntimeConfig,
    strategy: tf.distribute.Strategy,
    policy: str,
) -> keras.Model:
    """Build, compile and fit the model, writing config.json (not on resume), the assets,
    history and checkpoints into ``run``; return the fitted model."""
    model = compiled_model(task, config, data, runtime, strategy)
    train_data, val_data = data.train, data.val
    if runtime.strategy != "default":
        train_data, val_data = map(distribute.distributed_dataset, (train_data, val_data))
    if not resume:
        write_json(
            run.config_json,
            {
                "config": config.to_dict(),
                "runtime": runtime.to_dict(),
                "data": data.source,
                "environment": environment(
                    model, strategy, distribute.worker(runtime.strategy), policy
                ),
            },
        )
        atomic_save(run.initial_weights, model.save_weights)  # the model's weights alone
    with strategy.scope():
        build_before_fit(model, data.train)
    fix_keras_save_cache()  # the callbacks save weights every epoch
    for name, content in data.assets.items():  # vocabularies: the same bytes on --resume
        atomic_write_bytes(run.path / name, content)
    first_epoch = _restored_epoch(run) if resume else 0
    if resume:
        precision.check_loss_scaling(run, model)
    best, wait = _history_state(run, first_epoch) if resume else (math.inf, 0)
    terminal = sys.stdout.isatty()  # Keras's progress bar; else one line per epoch
    callbacks = [
        *([] if terminal else [EpochProgress()]),  # on stderr, where it is a terminal
        FeedEpoch(),  # each epoch's data order (keras_rnn.epochs)
        LogLearningRate(),
        *task.log_callbacks(config),
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
    callbacks += task.callbacks(config, data)  # e.g. samples in a language model's log
    callbacks.append(  # last: an epoch counts as done once the others have written theirs
        ExactBackupAndRestore(run.backup, double_checkpoint=True, delete_checkpoint=False)
    )
    stopped = config.patience and wait >= config.patience  # early stopping had ended the fit
    print(f"data: {json.dumps(data.source)}")
    print(f"model: {model.name}, {model.count_params():,} parameters, run directory {run.path}")
    if resume:
        print(f"resuming: {first_epoch} of {config.epochs} epochs were done")
    model.fit(
        train_data,
        validation_data=val_data,
        epochs=first_epoch if stopped else config.epochs,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles (seeded)
        verbose=1 if terminal else 2,
    )
    return model


def build_before_fit(model: keras.Model, dataset: tf.data.Dataset) -> None:
    """Make the compiled ``model``'s optimizer and metric variables for batches like
    ``dataset``'s, as Keras makes them under a strategy (and on its other backends). Without
    a strategy Keras makes them in ``fit``'s first trace, and tf.function then traces the
    train step twice. Call it in the scope of the strategy the model was compiled in."""
    model._symbolic_build(data_batch=dataset.element_spec)


def training_policy(runtime: RuntimeConfig) -> str:
    """The dtype policy ``runtime`` trains in on this machine (``precision.policy_name``)."""
    gpu = bool(tf.config.list_physical_devices("GPU"))
    return precision.policy_name(runtime.mixed_precision, gpu)


def apply_runtime(runtime: RuntimeConfig) -> None:
    """Set TensorFlow's threads; TensorFlow reads them once, before its first operation, so a
    process that has run one keeps its own (a ``UserError`` if they differ)."""
    if not runtime.threads:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(runtime.threads)
    except RuntimeError:  # TensorFlow's runtime has started
        current = tf.config.threading.get_intra_op_parallelism_threads()
        if current != runtime.threads:
            raise UserError(
                f"threads={runtime.threads} cannot apply: this process already runs TensorFlow "
                f"with {current or 'its default'} threads (set them in a new process)"
            ) from None


def run_training(
    config: TrainConfig,
    run_path: Path,
    force: bool,
    resume: bool,
    runtime: RuntimeConfig | None = None,
) -> tuple[Task, RunDir, dict]:
    """Apply ``runtime`` (threads; the dtype policy, checked here and applied by ``train``;
    the strategy, before any other TensorFlow operation), seed, load the data (before touching
    the run directory: bad data changes no file), prepare the run directory and train.
    Returns the task module, the run and its metrics.

    Under ``--strategy multiworker`` only the chief prepares and writes ``run_path``; another
    worker trains in a throwaway run directory (``distribute.worker_run``) and returns the
    chief's run with its own metrics (the same numbers)."""
    runtime = runtime or RuntimeConfig()
    position = distribute.worker(runtime.strategy)
    distribute.check_distributable(config, runtime)
    apply_runtime(runtime)
    training_policy(runtime)  # refused before the run directory is touched
    strategy = distribute.make_strategy(runtime.strategy)
    task = load_task(config.task)
    keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    data = task.make_datasets(config)
    if position.chief:
        run = prepare_run_dir(run_path, force=force, resume=resume)
        return task, run, train(task, config, data, run, resume, runtime, strategy)
    with distribute.worker_run(run_path, resume, position) as scratch:
        metrics = train(task, config, data, scratch, resume, runtime, strategy)
    return task, RunDir(run_path), metrics
