"""Addition, two ways.

Binary, as in the course: two numbers in, their sum out, one bit per step, least significant
bit first, so the network must learn to carry. Every operand pair below 2**(bits-1) (so the
sum fits in ``bits`` bits: 16,384 pairs at 8 bits) is enumerated and split once, seeded:
``test_pairs`` held out for testing, ``val_pairs`` for early stopping, the rest for training.

Decimal (``--digits N``), as in the Keras example: the text "a+b" (reversed, padded) in, the
sum as text out, sequence to sequence: an encoder reads the query, its last output is
repeated N+1 times, a decoder writes one character per step. ``train_pairs + val_pairs +
test_pairs`` distinct pairs are drawn, seeded, from all (10**N)**2.

No pair is in two splits.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from keras_rnn.config import BidirectionalConfig, TrainConfig, new_default, option
from keras_rnn.errors import UserError


@dataclasses.dataclass
class Config(BidirectionalConfig):
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
