"""Translation data: the splits (embedded dates or numbers, or a --pairs file), their
tokens, vocabularies and tf.data pipelines."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from keras_rnn.epochs import in_order, shuffled
from keras_rnn.errors import UserError
from keras_rnn.tasks.translate import Config
from keras_rnn.tasks.translate.dates import date_splits
from keras_rnn.tasks.translate.numbers import number_splits
from keras_rnn.tasks.translate.pairs import COURSE_PREFIXES, read_pairs
from keras_rnn.text import tokenize_batch
from serving.runtime.vocab import END, START, TokenVocabulary


@dataclasses.dataclass
class Datasets:
    """The text pairs of each split, their vocabularies and the tf.data pipelines."""

    # "train", "val", "test" (and, for the dates, "heldout_formats"): (source, target)
    splits: dict[str, list[tuple[str, str]]]
    mode: str  # how texts are tokenized: "characters" or "words"
    source_vocab: TokenVocabulary
    target_vocab: TokenVocabulary
    max_length: int  # longest source or target of any split, in tokens, plus the end token
    source: dict[str, Any]
    train: tf.data.Dataset
    val: tf.data.Dataset

    @property
    def assets(self) -> dict[str, bytes]:
        """Both vocabularies, with what a runtime needs to tokenize and decode, and for the
        dates whether the targets are ISO dates (the runtime checks each translation)."""
        extra = {"mode": self.mode, "max_length": self.max_length}
        dates = {"texts": "iso_date"} if self.source.get("data") == "dates" else {}
        return {
            "vocab/source.json": self.source_vocab.to_json(**extra),
            "vocab/target.json": self.target_vocab.to_json(**extra, **dates),
        }


def tokens_mode(config: Config) -> str:
    """Characters for the embedded data, words (CJK characters one by one) for --pairs."""
    return "words" if config.pairs else "characters"


def read_splits(config: Config) -> tuple[dict[str, list[tuple[str, str]]], dict[str, Any]]:
    """The (source, target) pairs of each split and what config.json records of them."""
    if config.data == "dates" and not config.pairs:
        splits = date_splits(
            config.data_seed, config.train_pairs, config.val_pairs, config.test_pairs
        )
        return splits, {"data": "dates"}
    if not config.pairs:
        splits = number_splits(
            config.data_seed,
            config.train_pairs,
            config.val_pairs,
            config.test_pairs,
            language=config.language,
        )
        return splits, {"data": "numbers", "language": config.language}
    prefixes = tuple(p.strip() for p in config.prefixes.split(",") if p.strip())
    if prefixes == ("course",):
        prefixes = COURSE_PREFIXES
    pairs, dropped = read_pairs(
        config.pairs,
        max_words=config.max_words or None,
        prefixes=prefixes,
        reverse=config.reverse,
    )
    held_out = config.val_pairs + config.test_pairs
    if len(pairs) <= held_out:
        raise UserError(
            f"{config.pairs} gives {len(pairs)} pairs after its filters: --val-pairs "
            f"{config.val_pairs} plus --test-pairs {config.test_pairs} must leave some for training"
        )
    order = np.random.default_rng(config.data_seed).permutation(len(pairs))
    chosen = [pairs[i] for i in order]
    splits = {
        "test": chosen[: config.test_pairs],
        "val": chosen[config.test_pairs : held_out],
        "train": chosen[held_out:],
    }
    digest = hashlib.sha256(Path(config.pairs).read_bytes()).hexdigest()
    return splits, {"pairs": config.pairs, "sha256": digest, "kept": len(pairs), "dropped": dropped}


def make_datasets(config: Config) -> Datasets:
    splits, source = read_splits(config)
    mode = tokens_mode(config)
    tokens = {
        split: (
            tokenize_batch([s for s, _ in pairs], mode),
            tokenize_batch([t for _, t in pairs], mode),
        )
        for split, pairs in splits.items()
    }
    source_vocab = TokenVocabulary.build(tokens["train"][0])
    target_vocab = TokenVocabulary.build(tokens["train"][1])
    # The limit covers every split, so that evaluation never meets a source it must refuse (a
    # small --train-pairs sample of the dates need not hold their longest way of writing one).
    longest = max(len(row) for sides in tokens.values() for side in sides for row in side) + 1
    if longest > config.max_output_length:
        raise UserError(
            f"the longest text has {longest - 1} tokens: raise --max-output-length "
            f"{config.max_output_length} or filter the pairs (--max-words)"
        )
    source |= {
        "tokens": mode,
        "examples": {split: len(pairs) for split, pairs in splits.items()},
        "source_vocabulary": source_vocab.size,
        "target_vocabulary": target_vocab.size,
    }
    print(
        f"translate: {len(splits['train']):,} training pairs, vocabularies of "
        f"{source_vocab.size} and {target_vocab.size} {mode}",
        flush=True,
    )

    def pipeline(split: str, shuffle: bool) -> tf.data.Dataset:
        sources = [source_vocab.encode(row)[0] for row in tokens[split][0]]
        targets = [target_vocab.encode(row)[0] for row in tokens[split][1]]
        elements = (
            {
                "source": ragged(sources),
                "target_in": ragged([np.concatenate([[START], t]) for t in targets]),
            },
            {"logits": ragged([np.concatenate([t, [END]]) for t in targets])},
        )
        dataset = shuffled(elements, config.seed) if shuffle else in_order(elements)
        return dataset.padded_batch(config.batch_size).prefetch(tf.data.AUTOTUNE)

    return Datasets(
        splits=splits,
        mode=mode,
        source_vocab=source_vocab,
        target_vocab=target_vocab,
        max_length=longest,
        source=source,
        train=pipeline("train", shuffle=True),
        val=pipeline("val", shuffle=False),
    )


def ragged(rows: list[np.ndarray]) -> tf.RaggedTensor:
    return tf.RaggedTensor.from_row_lengths(
        np.concatenate(rows).astype(np.int32), [len(row) for row in rows]
    )
