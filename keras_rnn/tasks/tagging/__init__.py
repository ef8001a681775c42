"""Sequence tagging: a tag for every item of a sequence, from both sides of it.

Default data: characters of Python standard-library source (``CORPUS``), each tagged with the
type of the token that Python's ``tokenize`` puts it in (``TAGS``). Whether a character sits
inside a string or a comment depends on what comes before and after it, which is why the
default model is bidirectional. Each file is cut into pieces of whole lines (at most
``max_length`` characters). ``--conll FILE`` reads whitespace-separated token/tag lines
(first and last column) with blank lines between sentences. Batches are right-padded and
masked; the last pieces are held out for testing, the ones before them for validation.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from keras_rnn.config import (
    BidirectionalConfig,
    TrainConfig,
    check_split_fractions,
    new_default,
    option,
)


@dataclasses.dataclass
class Config(BidirectionalConfig):
    """Sequence tagging (``--task tagging``): a tag for every character (or CoNLL token)."""

    task: str = option("tagging", "task to train")
    positive: ClassVar[tuple[str, ...]] = (*TrainConfig.positive, "max_length", "embedding_size")
    bidirectional: bool = new_default(BidirectionalConfig, "bidirectional", True)
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
