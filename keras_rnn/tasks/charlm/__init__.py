"""Character language model: predict each next character of a text.

The embedded corpus is a fixed list of Python standard-library source files read from the
running interpreter (``CORPUS``, about 1.9 MB); ``--text FILE`` trains on any UTF-8 text. The
text is split by position: training, then validation, then test (the last 5%). Characters
are split with tensorflow-text's Unicode tokenizer; the vocabulary (every character of the
training part, plus reserved padding and unknown ids) is written to ``vocab/vocab.json``.
Training carries the state across consecutive windows of ``sequence_length`` characters
or, with ``--batching random``, takes windows from random places, each from a zero state.
Validation and test read each split as long rows (``evaluation_rows``), then as one stream
that the model keeps learning from (``dynamic``).

By role: ``data`` (text, split, vocabulary, pipelines), ``model`` (network, metric, training
callbacks), ``generation`` (the one-step model and sampling), ``dynamic`` (dynamic
evaluation), ``compression`` (the xz baseline); ``task`` holds the task's
contract (``keras_rnn.tasks``) and names everything the rest of the project uses; this module
holds the ``Config``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

from keras_rnn.config import TrainConfig, check_split_fractions, new_default, option
from keras_rnn.errors import UserError


@dataclasses.dataclass
class Config(TrainConfig):
    """Character language model (``--task charlm``)."""

    task: str = option("charlm", "task to train")
    positive: ClassVar[tuple[str, ...]] = (
        *TrainConfig.positive,
        "sequence_length",
        "embedding_size",
        "sample_length",
        "dynamic_segment",
    )
    # Measured on 2 cores (docs/tasks/charlm.md): 11 epochs of a 384-unit GRU at batch 128 fit in
    # 15 minutes; the cosine decay ends the rate at zero on the last one. Without dropout a
    # 256-unit model overfits the 1.7 M training characters by epoch 6. Consecutive batching
    # tested 0.06 bits per character lower than random windows in the same epochs.
    cell: str = new_default(TrainConfig, "cell", "gru")
    units: int = new_default(TrainConfig, "units", 384)
    learning_rate: float = new_default(TrainConfig, "learning_rate", 3e-3)
    learning_rate_schedule: str = new_default(TrainConfig, "learning_rate_schedule", "cosine")
    clipnorm: float = new_default(TrainConfig, "clipnorm", 5.0)  # the course's clipping
    batch_size: int = new_default(TrainConfig, "batch_size", 128)
    epochs: int = new_default(TrainConfig, "epochs", 11)
    patience: int = new_default(TrainConfig, "patience", 3)
    dropout: float = option(0.3, "dropout between stacked layers and before the output layer")
    bidirectional: ClassVar[bool] = False  # read backwards, the model would see the future
    text: str | None = option(
        None, "UTF-8 text file to train on instead of the embedded corpus", input_file=True
    )
    batching: str = option(
        "consecutive",
        "consecutive: batch_size streams of consecutive windows, the state carried from batch "
        "to batch (truncated backpropagation through time) and reset every epoch; random: "
        "windows from random places, each starting from a zero state (the only choice with "
        "--strategy mirrored or multiworker)",
        ("random", "consecutive"),
    )
    sequence_length: int = option(100, "characters per training window")
    embedding_size: int = option(64, "size of the character embedding")
    val_fraction: float = option(0.05, "share of the text, before the test part, for validation")
    test_fraction: float = option(0.05, "share of the text at its end held out for testing")
    dynamic_rate: float = option(
        0.2,
        "after training, also evaluate dynamically: the model learns from each segment of "
        "validation and test text (SGD at this rate) after predicting it, as a compressor "
        "adapts to what it has read (metrics.json's *_dynamic figures); 0: do not",
    )
    dynamic_segment: int = option(50, "characters per step of the dynamic evaluation")
    sample_every: int = option(1, "log a sample from --sample-prefix every N epochs (0: never)")
    sample_prefix: str = option("def ", "prefix of the samples in the training log")
    sample_length: int = option(200, "characters per logged sample")

    def validate(self) -> None:
        super().validate()
        check_split_fractions(self.val_fraction, self.test_fraction)
        if not (math.isfinite(self.dynamic_rate) and self.dynamic_rate >= 0):
            raise UserError(f"--dynamic-rate must be a number >= 0, got {self.dynamic_rate}")
        if self.sample_every < 0:
            raise UserError(f"--sample-every must be >= 0, got {self.sample_every}")
        if not self.sample_prefix:
            raise UserError("--sample-prefix must not be empty")

    def undistributable(self) -> str | None:
        if self.batching != "consecutive":
            return None
        return (
            "--batching consecutive carries each stream's state in stateful layers built for a "
            f"fixed batch of {self.batch_size} rows, which tf.distribute would split across "
            "replicas: use --batching random, or --strategy default"
        )

    def inapplicable(self) -> dict[str, str]:
        # Dropout also acts before the output layer here, so it applies to one layer too.
        unused: dict[str, str] = {}
        if self.dynamic_rate == 0:
            unused["dynamic_segment"] = "with --dynamic-rate 0: no dynamic evaluation"
        if self.sample_every == 0:
            no_samples = "with --sample-every 0: no samples are logged"
            unused |= {"sample_prefix": no_samples, "sample_length": no_samples}
        return unused
