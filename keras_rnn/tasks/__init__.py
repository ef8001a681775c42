"""The task contract: what every task provides; the registry of tasks (``task_configs``,
``config_class``); and ``load_task``, which checks a task against the contract.

A task is a package ``keras_rnn/tasks/<name>/``: its ``__init__.py`` defines the task's
``Config`` (a ``TrainConfig``) and imports no TensorFlow, so the CLI checks flags before
TensorFlow starts; its ``task.py`` is the module below (``Task``), with the rest of the
task's code in modules beside it as the task needs.

The trainer (``keras_rnn/trainer.py``) calls, in this order: ``make_datasets`` (before the
run directory is touched, so bad data changes no file), ``build_model``, ``compile_args``,
``log_callbacks`` and ``callbacks`` for ``fit`` (having written the data's ``assets``, such as
vocabularies, into the run), then ``evaluate`` (which writes the task's plots into the run)
and ``format_metrics`` for the terminal. ``python -m export`` and ``export.verify`` call
``export_graphs`` on the trained model, then ``check_decoding`` on the written export. A new
task is its package here (found by ``task_configs``), its serving side (a library in
``serving/runtime`` and a ``TaskRuntime`` in ``serving/predict_tasks``, which
``serving.predict`` finds) and one test file that runs the shared battery
(``tests/battery.py``).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from keras_rnn.config import TrainConfig
from keras_rnn.errors import UserError

if TYPE_CHECKING:
    from pathlib import Path

    import keras
    import tensorflow as tf

    from keras_rnn.graphs import ExportGraph
    from keras_rnn.runs import RunDir


class TaskData(Protocol):
    """What ``make_datasets`` returns: the task's own dataclass, with at least these."""

    train: tf.data.Dataset  # batches of (inputs, targets) for fit
    val: tf.data.Dataset  # the same for validation (early stopping, best weights)
    source: dict[str, Any]  # where the data came from (files, sha256); config.json records it
    assets: dict[str, bytes]  # files for the run directory (vocabularies), by relative path


@runtime_checkable
class Task(Protocol):
    """A task module. Every function takes the task's ``Config`` (a ``TrainConfig``)."""

    Config: type[TrainConfig]

    def make_datasets(self, config: TrainConfig) -> TaskData:
        """The data, read and checked before the run directory is touched."""

    def build_model(self, config: TrainConfig, data: TaskData) -> keras.Model:
        """A Keras Functional model with named inputs and outputs."""

    def compile_args(self, config: TrainConfig, data: TaskData) -> dict[str, Any]:
        """``model.compile`` keywords besides the optimizer (loss, metrics)."""

    def log_callbacks(self, config: TrainConfig) -> list[keras.callbacks.Callback]:
        """Callbacks that add entries to each epoch's logs; they run before history.csv is
        written, so their entries are in it."""

    def callbacks(self, config: TrainConfig, data: TaskData) -> list[keras.callbacks.Callback]:
        """Any other callbacks for ``fit`` (e.g. samples in a language model's log)."""

    def evaluate(
        self,
        model: keras.Model,
        untrained: keras.Model,
        data: TaskData,
        config: TrainConfig,
        run: RunDir,
    ) -> dict[str, Any]:
        """The test metrics (metrics.json) of the trained model, with the untrained one as a
        baseline; writes the task's plots into ``run``."""

    def format_metrics(self, metrics: dict[str, Any], config: TrainConfig) -> str:
        """The metrics as the markdown tables the CLI prints."""

    def export_graphs(
        self, model: keras.Model, config: TrainConfig, run: RunDir
    ) -> list[ExportGraph]:
        """The graphs to export, each with its names, input specs and parity samples; ``run``
        holds the files they may need (its vocabularies)."""

    def check_decoding(
        self, model: keras.Model, config: TrainConfig, export_dir: Path
    ) -> dict[str, Any] | None:
        """Whole outputs of decoding (generated text, translations) through the exported
        graphs in ``export_dir`` against Keras's: ``parity.json``'s ``decode`` entry, with
        its ``ok``; None for a task whose outputs come from one graph call."""


def no_log_callbacks(config: TrainConfig) -> list[keras.callbacks.Callback]:
    """``Task.log_callbacks`` of a task that adds nothing to the epoch logs."""
    return []


def no_callbacks(config: TrainConfig, data: TaskData) -> list[keras.callbacks.Callback]:
    """``Task.callbacks`` of a task that needs none."""
    return []


def no_decoding_check(model: keras.Model, config: TrainConfig, export_dir: Path) -> None:
    """``Task.check_decoding`` of a task that does not decode step by step."""
    return None


@functools.cache
def task_configs() -> dict[str, type[TrainConfig]]:
    """Every task's ``Config``, by task name: one per package here, whose ``__init__.py``
    defines it without importing TensorFlow (the task's code is elsewhere in the package)."""
    configs = {}
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg:
            package = importlib.import_module(f"{__name__}.{module.name}")
            configs[module.name] = package.Config
    return configs


def config_class(task: str) -> type[TrainConfig]:
    """The config dataclass of ``task``; an unknown task is a ``UserError``."""
    configs = task_configs()
    if task not in configs:
        raise UserError(f"unknown task {task!r}: choose one of {', '.join(configs)}")
    return configs[task]


def load_task(name: str) -> Task:
    """The task module for ``name``; an unknown name is a ``UserError``, a module that does not
    provide the whole contract a ``TypeError`` naming what it lacks."""
    config_class(name)
    module: ModuleType = importlib.import_module(f"keras_rnn.tasks.{name}.task")
    if not isinstance(module, Task):
        missing = [member for member in _MEMBERS if not hasattr(module, member)]
        raise TypeError(f"task module {module.__name__} lacks {', '.join(missing)}")
    return module


_MEMBERS = ("Config", *(name for name in vars(Task) if not name.startswith("_")))
