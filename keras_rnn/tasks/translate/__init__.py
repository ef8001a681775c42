"""Translation with attention: a sequence-to-sequence model reads a source text and writes its
target, token by token.

Embedded data (``--data``): ``dates``, human-written dates in English and Chinese to ISO 8601
(``dates.FORMATS``; the test split's dates are never seen in training, and are written again
in ``dates.HELDOUT_FORMATS``, formats no split uses, for a held-out-formats score), or ``numbers``,
numbers written out in English or Chinese words to digits (sources of 1 to about 150
characters, for the length study). ``--pairs FILE`` reads the Tatoeba/Anki tab-separated
format instead (``pairs.read_pairs``). Texts are tokenized by characters (the embedded data)
or words (``--pairs``: words and punctuation, CJK characters one by one), and each side gets
a vocabulary with padding, unknown, start and end ids, written to ``vocab/``.

By role: ``dates``, ``numbers`` and ``pairs`` (the texts), ``data`` (splits, vocabularies,
pipelines), ``model`` (the encoder-decoder and its step models), ``decoding`` (the Keras
translator, scores, attention plots, the export's decoding parity), ``text_graph`` (the
string-in, string-out SavedModel graph), ``task`` (the task's contract: training, evaluation,
export); this module holds the ``Config``.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from keras_rnn.config import TrainConfig, new_default, option
from keras_rnn.errors import UserError

ATTENTIONS = ("bahdanau", "luong-dot", "luong-general", "luong-concat", "none")


@dataclasses.dataclass
class Config(TrainConfig):
    """Translation (``--task translate``)."""

    task: str = option("translate", "task to train")
    positive: ClassVar[tuple[str, ...]] = (
        *TrainConfig.positive,
        "embedding_size",
        "attention_units",
        "train_pairs",
        "val_pairs",
        "test_pairs",
        "max_output_length",
    )
    seeds: ClassVar[tuple[str, ...]] = ("seed", "data_seed")
    cell: str = option("gru", "recurrent cell of the encoder and the decoder", ("lstm", "gru"))
    units: int = option(64, "units per direction of the encoder; the decoder has twice as many")
    bidirectional: ClassVar[bool] = True  # the encoder reads both ways and concatenates them
    # Measured on 2 cores (docs/tasks/translate.md): the dates reach exact match 0.999 by epoch
    # 12 at a constant rate, with loss spikes on the way; the cosine decay ends them in 12 epochs.
    batch_size: int = new_default(TrainConfig, "batch_size", 64)
    epochs: int = new_default(TrainConfig, "epochs", 12)
    learning_rate_schedule: str = new_default(TrainConfig, "learning_rate_schedule", "cosine")
    patience: int = new_default(TrainConfig, "patience", 5)
    attention: str = option(
        "luong-general",
        "attention over the encoder's outputs: luong-* after the decoder RNN (one cuDNN-eligible "
        "layer in training), bahdanau inside it (a cell in keras.layers.RNN: not "
        "cuDNN-eligible), none: the plain encoder-decoder",
        ATTENTIONS,
    )
    attention_units: int = option(64, "size of the additive scores (luong-concat, bahdanau)")
    embedding_size: int = option(32, "size of the source and target token embeddings")
    data: str = option("dates", "embedded data: dates or numbers", ("dates", "numbers"))
    language: str = option(
        "both", "numbers: the language they are written in", ("english", "chinese", "both")
    )
    pairs: str | None = option(
        None, "Tatoeba/Anki tab-separated file (source, target, attribution)", input_file=True
    )
    reverse: bool = option(False, "--pairs: translate the second column into the first")
    max_words: int = option(0, "--pairs: keep pairs of at most this many words (0: any)")
    prefixes: str = option(
        "",
        "--pairs: keep pairs whose English side starts with one of these comma-separated "
        "prefixes ('course': the course's 'i am', 'he is', ...)",
    )
    train_pairs: int = option(20000, "embedded data: training examples")
    val_pairs: int = option(1000, "validation examples (early stopping)")
    test_pairs: int = option(1000, "test examples, never seen in training")
    data_seed: int = option(0, "seed of the embedded data and of the --pairs split")
    beam_width: int = option(4, "beams of the beam-search metrics (0: greedy metrics only)")
    length_penalty: float = option(
        1.0, "beam search ranks by log-probability / length**LENGTH_PENALTY"
    )
    max_output_length: int = option(
        200,
        "longest text of any split, in tokens; decoding reads sources and writes outputs up to "
        "the longest text's length plus one",
    )

    def validate(self) -> None:
        super().validate()
        if self.beam_width < 0:
            raise UserError(f"--beam-width must be >= 0, got {self.beam_width}")
        if self.max_words < 0:
            raise UserError(f"--max-words must be >= 0, got {self.max_words}")
        if not self.length_penalty >= 0:
            raise UserError(f"--length-penalty must be >= 0, got {self.length_penalty}")

    def inapplicable(self) -> dict[str, str]:
        unused = super().inapplicable()
        if self.attention == "none":
            unused["attention_units"] = "with --attention none"
        elif self.attention not in ("luong-concat", "bahdanau"):
            unused["attention_units"] = f"with --attention {self.attention}: it scores by dot"
        if self.beam_width == 0:
            unused["length_penalty"] = "with --beam-width 0: it ranks beams"
        if self.pairs:
            embedded = "with --pairs: it shapes the embedded data"
            unused |= {name: embedded for name in ("data", "language", "train_pairs")}
        else:
            no_file = "without --pairs"
            unused |= {name: no_file for name in ("reverse", "max_words", "prefixes")}
            if self.data == "dates":
                unused["language"] = "to --data dates: they are in English and Chinese"
        return unused
