"""Noisy-sine forecasting: a window of past values -> the next value and the next ``horizon``.

The embedded series is the course's: ``points`` values of sin(x) on [0, 36] plus uniform
[0, noise) noise, seeded. ``--csv FILE --column NAME`` replaces it with a user's series. The
series is split in time: train, then validation (early stopping), then test (the last 20%).
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from keras_rnn.config import (
    BidirectionalConfig,
    TrainConfig,
    check_split_fractions,
    new_default,
    option,
)
from keras_rnn.errors import UserError


@dataclasses.dataclass
class Config(BidirectionalConfig):
    """Noisy-sine forecasting (``--task sine``)."""

    task: str = option("sine", "task to train")
    positive: ClassVar[tuple[str, ...]] = (*TrainConfig.positive, "window", "horizon", "points")
    seeds: ClassVar[tuple[str, ...]] = ("seed", "data_seed")
    # 280 training points: a small network with a gentle rate generalises best (docs/tasks/sine.md).
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
