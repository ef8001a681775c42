"""Training configuration: dataclasses are the single source of every default.

Each task has a subclass of ``TrainConfig`` here, registered in ``CONFIGS``. CLI flags are
generated from the fields (``--batch-size`` for ``batch_size``; help text and choices from field
metadata), and the resolved config is saved as the run's ``config.json``. This module imports
no TensorFlow, so arguments are checked before TensorFlow starts.
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
    """Fields every task shares: model shape, optimisation, seeds."""

    task: str = option("", "task to train")
    cell: str = option("lstm", "recurrent cell", CELLS)
    units: int = option(32, "units per recurrent layer")
    layers: int = option(1, "stacked recurrent layers")
    bidirectional: bool = option(False, "wrap each recurrent layer in Bidirectional")
    merge_mode: str = option("concat", "how Bidirectional merges directions", MERGE_MODES)
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
        unused = {} if self.bidirectional else {"merge_mode": "without --bidirectional"}
        if self.layers == 1:
            unused["dropout"] = "to one layer: it acts between stacked layers (--layers 2 or more)"
        return unused

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SineConfig(TrainConfig):
    """Noisy-sine forecasting (``--task sine``)."""

    task: str = option("sine", "task to train")
    positive: ClassVar[tuple[str, ...]] = (*TrainConfig.positive, "window", "horizon", "points")
    seeds: ClassVar[tuple[str, ...]] = ("seed", "data_seed")
    # 280 training points: a small network with a gentle rate generalises best (README table).
    units: int = new_default(TrainConfig, "units", 16)
    learning_rate: float = new_default(TrainConfig, "learning_rate", 1e-3)
    epochs: int = new_default(TrainConfig, "epochs", 300)
    patience: int = new_default(TrainConfig, "patience", 30)
    window: int = option(10, "past values the model sees")
    horizon: int = option(10, "steps ahead of the multi-step forecasts")
    points: int = option(400, "length of the embedded noisy sine on [0, 36]")
    noise: float = option(0.2, "the embedded series adds uniform [0, NOISE) noise to sin(x)")
    data_seed: int = option(0, "seed of the embedded series' noise")
    val_fraction: float = option(0.1, "share of the series, before the test part, for validation")
    test_fraction: float = option(0.2, "share of the series at its end held out for testing")
    csv: str | None = option(
        None, "CSV file with a header row: forecast this series instead", input_file=True
    )
    column: str | None = option(None, "CSV column to read (default: the file's only column)")

    def validate(self) -> None:
        super().validate()
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise UserError(f"--noise must be >= 0, got {self.noise}")
        check_split_fractions(self.val_fraction, self.test_fraction)
        if self.column is not None and self.csv is None:
            raise UserError("--column needs --csv")

    def inapplicable(self) -> dict[str, str]:
        unused = super().inapplicable()
        if self.csv is not None:
            embedded = "with --csv: it shapes the embedded series"
            unused |= {name: embedded for name in ("points", "noise", "data_seed")}
        return unused


@dataclasses.dataclass
class AdditionConfig(TrainConfig):
    """Addition (``--task addition``): binary, one bit per step, least significant first; or,
    with ``--digits N``, decimal as sequence to sequence (the Keras example)."""

    task: str = option("addition", "task to train")
    positive: ClassVar[tuple[str, ...]] = (
        *TrainConfig.positive,
        "bits",
        "test_pairs",
        "val_pairs",
        "train_pairs",
    )
    seeds: ClassVar[tuple[str, ...]] = ("seed", "data_seed")
    # The course's adder: a small SimpleRNN learns the carry exactly (held-out bit accuracy
    # reaches 1.0 in the second epoch).
    cell: str = new_default(TrainConfig, "cell", "simple")
    units: int = new_default(TrainConfig, "units", 16)
    learning_rate: float = new_default(TrainConfig, "learning_rate", 1e-2)
    epochs: int = new_default(TrainConfig, "epochs", 10)
    patience: int = new_default(TrainConfig, "patience", 5)
    bits: int = option(8, "bits per number; operands are below 2**(bits-1) so the sum fits")
    test_pairs: int = option(5000, "operand pairs held out for testing")
    val_pairs: int = option(1000, "operand pairs held out for early stopping")
    data_seed: int = option(0, "seed of the split of operand pairs")
    digits: int = option(
        0, "0: binary addition; N: decimal addition of numbers of up to N digits, as text"
    )
    train_pairs: int = option(200000, "decimal mode: operand pairs to train on")

    def validate(self) -> None:
        super().validate()
        if not 2 <= self.bits <= 16:
            raise UserError(f"--bits must be in [2, 16], got {self.bits}")
        if not 0 <= self.digits <= 9:
            raise UserError(f"--digits must be in [0, 9], got {self.digits}")
        if self.digits:
            pairs, flags = 100**self.digits, f"--digits {self.digits}"
            wanted = self.train_pairs + self.test_pairs + self.val_pairs
        else:
            pairs, flags = 4 ** (self.bits - 1), f"--bits {self.bits}"
            wanted = self.test_pairs + self.val_pairs + 1
        if wanted > pairs:
            raise UserError(
                f"{flags} gives {pairs} operand pairs: --test-pairs {self.test_pairs} "
                f"plus --val-pairs {self.val_pairs} must leave some for training"
                + (f" (--train-pairs {self.train_pairs})" if self.digits else "")
            )

    def inapplicable(self) -> dict[str, str]:
        unused = super().inapplicable()
        if self.digits:
            unused["bits"] = "with --digits: it sets the width of binary addition"
        else:
            unused["train_pairs"] = (
                "without --digits: binary addition trains on every pair not held out"
            )
        return unused


@dataclasses.dataclass
class CharLMConfig(TrainConfig):
    """Character language model (``--task charlm``)."""

    task: str = option("charlm", "task to train")
    positive: ClassVar[tuple[str, ...]] = (
        *TrainConfig.positive,
        "sequence_length",
        "embedding_size",
        "sample_length",
    )
    # Measured on 2 CPU cores (README table): 11 epochs of a 384-unit GRU at batch 128 fit in
    # 15 minutes; the cosine decay ends the rate at zero on the last one. Without dropout a
    # 256-unit model overfits the 1.7 M training characters by epoch 6.
    cell: str = new_default(TrainConfig, "cell", "gru")
    units: int = new_default(TrainConfig, "units", 384)
    learning_rate: float = new_default(TrainConfig, "learning_rate", 3e-3)
    learning_rate_schedule: str = new_default(TrainConfig, "learning_rate_schedule", "cosine")
    clipnorm: float = new_default(TrainConfig, "clipnorm", 5.0)  # the course's clipping
    batch_size: int = new_default(TrainConfig, "batch_size", 128)
    epochs: int = new_default(TrainConfig, "epochs", 11)
    patience: int = new_default(TrainConfig, "patience", 3)
    dropout: float = option(0.3, "dropout between stacked layers and before the output layer")
    text: str | None = option(
        None, "UTF-8 text file to train on instead of the embedded corpus", input_file=True
    )
    batching: str = option(
        "random",
        "random: windows from random places, each starting from a zero state; consecutive: "
        "batch_size streams of consecutive windows, the state carried from batch to batch "
        "(truncated backpropagation through time) and reset every epoch",
        ("random", "consecutive"),
    )
    sequence_length: int = option(100, "characters per training window")
    embedding_size: int = option(64, "size of the character embedding")
    val_fraction: float = option(0.05, "share of the text, before the test part, for validation")
    test_fraction: float = option(0.05, "share of the text at its end held out for testing")
    sample_every: int = option(1, "log a sample from --sample-prefix every N epochs (0: never)")
    sample_prefix: str = option("def ", "prefix of the samples in the training log")
    sample_length: int = option(200, "characters per logged sample")

    def validate(self) -> None:
        super().validate()
        if self.bidirectional:
            raise UserError(
                "--bidirectional does not apply to a language model: it would see the future"
            )
        check_split_fractions(self.val_fraction, self.test_fraction)
        if self.sample_every < 0:
            raise UserError(f"--sample-every must be >= 0, got {self.sample_every}")
        if not self.sample_prefix:
            raise UserError("--sample-prefix must not be empty")

    def inapplicable(self) -> dict[str, str]:
        # Dropout also acts before the output layer here, so it applies to one layer too.
        unused = {"merge_mode": "to a language model: it is never bidirectional"}
        if self.sample_every == 0:
            no_samples = "with --sample-every 0: no samples are logged"
            unused |= {"sample_prefix": no_samples, "sample_length": no_samples}
        return unused


@dataclasses.dataclass
class TaggingConfig(TrainConfig):
    """Sequence tagging (``--task tagging``): a tag for every character (or CoNLL token)."""

    task: str = option("tagging", "task to train")
    positive: ClassVar[tuple[str, ...]] = (*TrainConfig.positive, "max_length", "embedding_size")
    bidirectional: bool = new_default(TrainConfig, "bidirectional", True)
    cell: str = new_default(TrainConfig, "cell", "gru")
    units: int = new_default(TrainConfig, "units", 64)
    epochs: int = new_default(TrainConfig, "epochs", 10)
    patience: int = new_default(TrainConfig, "patience", 3)
    conll: str | None = option(
        None, "CoNLL file (token and tag per line, blank line between sentences)", input_file=True
    )
    max_length: int = option(100, "longest sequence; longer ones are cut into pieces")
    embedding_size: int = option(32, "size of the character (or token) embedding")
    val_fraction: float = option(
        0.1, "share of the sequences, before the test part, for validation"
    )
    test_fraction: float = option(0.1, "share of the sequences at the end held out for testing")

    def validate(self) -> None:
        super().validate()
        check_split_fractions(self.val_fraction, self.test_fraction)


CONFIGS: dict[str, type[TrainConfig]] = {
    "sine": SineConfig,
    "addition": AdditionConfig,
    "charlm": CharLMConfig,
    "tagging": TaggingConfig,
}


def check_split_fractions(val_fraction: float, test_fraction: float) -> None:
    """Validation and test shares must each be in (0, 1) and leave data for training."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 1:
            raise UserError(f"--{flag(name)} must be in (0, 1)")
    if val_fraction + test_fraction >= 1:
        raise UserError("--val-fraction plus --test-fraction must leave data for training")


def config_class(task: str) -> type[TrainConfig]:
    """The config dataclass of ``task``; an unknown task is a ``UserError``."""
    if task not in CONFIGS:
        raise UserError(f"unknown task {task!r}: choose one of {', '.join(CONFIGS)}")
    return CONFIGS[task]


def flag(name: str) -> str:
    return name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser, config_class: type[TrainConfig]) -> None:
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
    """Build a config from saved or parsed values; unknown keys are an error."""
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(f"unknown config keys for {config_class.__name__}: {', '.join(unknown)}")
    return config_class(**values)  # validated on construction


def check_applicable(config: TrainConfig, given: Iterable[str]) -> None:
    """Refuse the first field of ``given`` (the flags a user typed) that ``config`` ignores."""
    unused = config.inapplicable()
    for name in given:
        if name in unused:
            raise UserError(f"--{flag(name)} does not apply {unused[name]}")
