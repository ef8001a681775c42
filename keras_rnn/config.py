"""Training configuration: dataclasses are the single source of every default.

``TrainConfig`` holds the hyperparameters every task shares; each task package defines its
``Config`` subclass in its ``__init__.py`` (``keras_rnn/tasks/<name>/``), found by
``keras_rnn.tasks.task_configs``. Model-shape flags that only some tasks take are opt-in: a
task whose recurrent stack may read both ways extends ``BidirectionalConfig``; another fixes
the direction in a class variable, so it has no flag that could only be refused.
``RuntimeConfig`` holds how a run executes (threads, distribution, precision), apart from what
it learns, as TensorFlow Model Garden keeps a runtime config beside each task's. CLI flags are
generated from the fields (``--batch-size`` for ``batch_size``; help text and choices from
field metadata), and the resolved configs are saved in the run's ``config.json``. This module
imports no TensorFlow, and nothing of the project but ``keras_rnn.errors``, so arguments are
checked before TensorFlow starts and any module may import it.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Iterable
from typing import Any, ClassVar

from keras_rnn.errors import UserError

CELLS = ("simple", "lstm", "gru")
MERGE_MODES = ("concat", "sum", "mul", "ave")
STRATEGIES = ("default", "mirrored", "multiworker")


def option(default: Any, help: str, choices: tuple | None = None, input_file: bool = False) -> Any:
    """A config field with its CLI help text (and choices); ``input_file`` marks a path the
    task reads its data from."""
    return dataclasses.field(
        default=default, metadata={"help": help, "choices": choices, "input_file": input_file}
    )


def input_files(config: TrainConfig) -> dict[str, str]:
    """The input-file fields of ``config`` that are set, by field name."""
    return {
        field.name: getattr(config, field.name)
        for field in dataclasses.fields(config)
        if field.metadata.get("input_file") and getattr(config, field.name)
    }


def new_default(config_class: type, name: str, default: Any) -> Any:
    """The field ``name`` of ``config_class`` with another default, its help kept."""
    field = next(f for f in dataclasses.fields(config_class) if f.name == name)
    return dataclasses.field(default=default, metadata=field.metadata)


@dataclasses.dataclass
class TrainConfig:
    """Fields every task shares: the recurrent stack's cell, size and depth, optimisation,
    seeds."""

    task: str = option("", "task to train")
    cell: str = option("lstm", "recurrent cell", CELLS)
    units: int = option(32, "units per recurrent layer")
    layers: int = option(1, "stacked recurrent layers")
    dropout: float = option(0.0, "dropout between stacked layers (0 disables)")
    epochs: int = option(100, "maximum training epochs")
    batch_size: int = option(32, "examples per batch")
    learning_rate: float = option(3e-3, "Adam learning rate")
    learning_rate_schedule: str = option(
        "constant",
        "constant, or cosine: decayed from --learning-rate to zero over --epochs epochs",
        ("constant", "cosine"),
    )
    clipnorm: float = option(1.0, "clip gradients to this global norm (0 disables)")
    patience: int = option(
        20, "stop after this many epochs without val_loss improvement (0: never)"
    )
    seed: int = option(0, "seed for weights, shuffling and dropout")
    tensorboard: bool = option(False, "write TensorBoard logs into the run directory")

    positive: ClassVar[tuple[str, ...]] = ("units", "layers", "epochs", "batch_size")
    seeds: ClassVar[tuple[str, ...]] = ("seed",)
    # The direction of a task that takes no --bidirectional (fields of BidirectionalConfig).
    bidirectional: ClassVar[bool] = False
    merge_mode: ClassVar[str] = "concat"

    def __post_init__(self) -> None:
        self.validate()  # a config that exists is valid, whether built by the CLI or in code

    def validate(self) -> None:
        """Raise ``UserError`` naming the first field that is out of range."""
        for name in self.positive:
            if getattr(self, name) <= 0:
                raise UserError(f"--{flag(name)} must be positive, got {getattr(self, name)}")
        for name in self.seeds:  # what numpy and TensorFlow accept as a seed
            if not 0 <= getattr(self, name) < 2**32:
                raise UserError(f"--{flag(name)} must be in [0, 2**32), got {getattr(self, name)}")
        for name in ("learning_rate",):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise UserError(f"--{flag(name)} must be a positive number, got {value}")
        if not (math.isfinite(self.clipnorm) and self.clipnorm >= 0):
            raise UserError(f"--clipnorm must be >= 0, got {self.clipnorm}")
        if self.patience < 0:
            raise UserError(f"--patience must be >= 0, got {self.patience}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1), got {self.dropout}")
        for field in dataclasses.fields(self):
            choices = field.metadata.get("choices")
            if choices and getattr(self, field.name) not in choices:
                raise UserError(
                    f"--{flag(field.name)}: {getattr(self, field.name)!r} is not one of "
                    f"{', '.join(map(str, choices))}"
                )

    def inapplicable(self) -> dict[str, str]:
        """Fields that have no effect with the other values, each with why (after "does not
        apply"); ``check_applicable`` refuses them when they were given."""
        unused: dict[str, str] = {}
        if self.layers == 1:
            unused["dropout"] = "to one layer: it acts between stacked layers (--layers 2 or more)"
        return unused

    def undistributable(self) -> str | None:
        """Why ``--strategy mirrored`` or ``multiworker`` cannot train this config (ending
        "--strategy S cannot train this run: "), or None when they can."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class BidirectionalConfig(TrainConfig):
    """A task whose recurrent stack may read its sequence both ways."""

    bidirectional: bool = option(False, "wrap each recurrent layer in Bidirectional")
    merge_mode: str = option("concat", "how Bidirectional merges directions", MERGE_MODES)

    def inapplicable(self) -> dict[str, str]:
        unused = super().inapplicable()
        if not self.bidirectional:
            unused["merge_mode"] = "without --bidirectional"
        return unused


DIRECTION_KEYS = ("bidirectional", "merge_mode")
"""Fields of ``BidirectionalConfig`` that every config.json held before they were opt-in."""


@dataclasses.dataclass
class RuntimeConfig:
    """How a run executes, apart from what it learns: ``--resume`` may change it, and
    ``config.json`` records the one the run started with."""

    threads: int = option(
        0, "threads TensorFlow runs each operation on (0: TensorFlow's choice, one per core)"
    )
    strategy: str = option(
        "default",
        "how training is spread: default (one device), mirrored (every GPU of this machine, or "
        "without a GPU its logical CPU devices), multiworker (the machines TF_CONFIG lists); "
        "--batch-size stays the global batch, split across the replicas",
        STRATEGIES,
    )

    mixed_precision: bool = option(
        False,
        "compute in float16 on a GPU, or in bfloat16 on a processor with bfloat16 instructions; "
        "variables and outputs stay float32, and model.keras is a float32 model",
    )
    steps_per_execution: int = option(
        0,
        "training steps TensorFlow runs per call from Python: less overhead per step, the "
        "same weights; per-batch callbacks see every Nth batch (0: 32, or 1 under mirrored and "
        "multiworker, where Keras 3 fails with more: keras-team/keras#19246)",
    )

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise UserError(f"--threads must be >= 0, got {self.threads}")
        if self.strategy not in STRATEGIES:
            raise UserError(f"--strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.steps_per_execution < 0:
            raise UserError(f"--steps-per-execution must be >= 0, got {self.steps_per_execution}")
        if self.steps_per_execution > 1 and self.strategy != "default":
            raise UserError(
                f"--steps-per-execution {self.steps_per_execution} does not run under --strategy "
                f"{self.strategy}: Keras 3 fails there with more than 1 (keras-team/keras#19246)"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def steps_per_call(self) -> int:
        """``steps_per_execution`` with 0 resolved for the strategy."""
        if self.steps_per_execution:
            return self.steps_per_execution
        return 32 if self.strategy == "default" else 1


def check_split_fractions(val_fraction: float, test_fraction: float) -> None:
    """Validation and test shares must each be in (0, 1) and leave data for training."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise UserError(f"--{flag(name)} must be in (0, 1)")
    if val_fraction + test_fraction >= 1:
        raise UserError("--val-fraction plus --test-fraction must leave data for training")


def flag(name: str) -> str:
    return name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser, config_class: type) -> None:
    """Add one flag per config field. Defaults are suppressed so that only flags the user
    actually typed appear in the parsed namespace; help still shows each default."""
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        if field.name == "task":
            continue
        kind = hints[field.name]
        help_text = field.metadata.get("help", "")
        if field.default is not None and "default:" not in help_text:
            help_text += f" (default: {field.default})"
        name = f"--{flag(field.name)}"
        if kind is bool:
            parser.add_argument(
                name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
            continue
        value_type = next(t for t in typing.get_args(kind) or (kind,) if t is not type(None))
        parser.add_argument(
            name,
            type=value_type,
            choices=field.metadata.get("choices"),
            default=argparse.SUPPRESS,
            metavar=field.name.upper() if not field.metadata.get("choices") else None,
            help=help_text,
        )


def config_from_dict(config_class: type[TrainConfig], values: dict[str, Any]) -> TrainConfig:
    """Build a config from saved or parsed values; unknown keys are an error.

    A config.json written before the direction was opt-in holds ``DIRECTION_KEYS`` for every
    task: a task that fixes them drops them when they hold its fixed values, and refuses them
    otherwise (such a run was not trained by this task's model)."""
    names = {f.name for f in dataclasses.fields(config_class)}
    values = dict(values)
    for name in DIRECTION_KEYS:
        if name in values and name not in names:
            value, fixed = values.pop(name), getattr(config_class, name)
            if value != fixed:
                raise UserError(
                    f"config key {name} is {value!r}, but task {config_class.task} always has "
                    f"{fixed!r} and takes no --{flag(name)}: edit the saved config or retrain"
                )
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(f"unknown config keys for task {config_class.task}: {', '.join(unknown)}")
    return config_class(**values)  # validated on construction


def check_applicable(config: TrainConfig, given: Iterable[str]) -> None:
    """Refuse the first field of ``given`` (the flags a user typed) that ``config`` ignores."""
    unused = config.inapplicable()
    for name in given:
        if name in unused:
            raise UserError(f"--{flag(name)} does not apply {unused[name]}")
