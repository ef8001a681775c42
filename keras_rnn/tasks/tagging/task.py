"""The tagging task's contract (``keras_rnn.tasks.Task``); the package docstring describes
the task."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import keyword
import sysconfig
import token
import tokenize
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rnn.epochs import shuffled
from keras_rnn.errors import UserError
from keras_rnn.graphs import ExportGraph
from keras_rnn.layers import FLOAT32, configured_stack
from keras_rnn.runs import RunDir
from keras_rnn.tasks import no_callbacks, no_decoding_check, no_log_callbacks
from keras_rnn.tasks.tagging import Config
from keras_rnn.text import encode, split_characters
from serving import cli
from serving.runtime.tagging import line_pieces
from serving.runtime.vocab import Vocabulary

CORPUS = (
    "argparse.py", "csv.py", "dataclasses.py", "functools.py", "json/decoder.py",
    "json/encoder.py", "pprint.py", "random.py", "string.py", "textwrap.py",
)  # fmt: skip
TAGS = ("whitespace", "name", "keyword", "operator", "number", "string", "comment")
TOKEN_TAGS = {
    token.NAME: "name",
    token.OP: "operator",
    token.NUMBER: "number",
    token.STRING: "string",
    token.COMMENT: "comment",
}


@dataclasses.dataclass
class Datasets:
    ids: list[np.ndarray]  # item (character or token) ids per sequence
    tags: list[np.ndarray]  # tag ids (1-based; 0 is padding) per sequence
    val_start: int  # first sequence of the validation split
    test_start: int
    vocab: Vocabulary
    tag_names: tuple[str, ...]  # tag_names[id - 1]
    source: dict[str, Any]
    train: tf.data.Dataset
    val: tf.data.Dataset

    @property
    def assets(self) -> dict[str, bytes]:
        """The vocabulary, with the tag names (id 1 onwards) beside the items, for runtimes."""
        return {"vocab/vocab.json": self.vocab.to_json(tags=list(self.tag_names))}


def character_tags(text: str) -> list[str]:
    """The token type of every character of Python source ``text``."""
    line_starts = np.cumsum([0, *map(len, text.splitlines(keepends=True))])
    tags = ["whitespace"] * len(text)
    for item in tokenize.generate_tokens(io.StringIO(text).readline):
        if item.type not in TOKEN_TAGS:
            continue
        name = TOKEN_TAGS[item.type]
        if name == "name" and keyword.iskeyword(item.string):
            name = "keyword"
        start = line_starts[item.start[0] - 1] + item.start[1]
        end = line_starts[item.end[0] - 1] + item.end[1]
        tags[start:end] = [name] * (end - start)
    return tags


def source_sequences(config: Config) -> tuple[list[list[str]], list[list[str]], dict]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sequences, tags, digest = [], [], hashlib.sha256()
    for name in CORPUS:
        text = (stdlib / name).read_text(encoding="utf-8")
        digest.update(text.encode("utf-8"))
        file_tags = character_tags(text)
        for start, end in line_pieces(text, config.max_length):
            sequences.append(list(text[start:end]))
            tags.append(file_tags[start:end])
    source = {"kind": "Python standard library", "files": list(CORPUS)}
    return sequences, tags, source | {"text_sha256": digest.hexdigest()}


def read_conll(path: str, max_length: int) -> tuple[list[list[str]], list[list[str]], dict]:
    """Sentences of a CoNLL file: token in the first column, tag in the last."""
    file = cli.input_file(path, "CoNLL")
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise UserError(f"{path} is not UTF-8 text (byte {error.start})") from None
    sequences, tags, words, labels = [], [], [], []
    for number, line in enumerate([*lines, ""], start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                for start in range(0, len(words), max_length):
                    sequences.append(words[start : start + max_length])
                    tags.append(labels[start : start + max_length])
            words, labels = [], []
            continue
        if len(fields) < 2:
            raise UserError(f"{path} line {number}: expected a token and a tag, got {line!r}")
        words.append(fields[0])
        labels.append(fields[-1])
    if not sequences:
        raise UserError(f"{path} has no sentences")
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    return sequences, tags, {"kind": "conll", "file": file.name, "file_sha256": digest}


def make_datasets(config: Config) -> Datasets:
    if config.conll:
        sequences, tags, source = read_conll(config.conll, config.max_length)
    else:
        sequences, tags, source = source_sequences(config)
    count = len(sequences)
    test_start = count - round(count * config.test_fraction)
    val_start = test_start - round(count * config.val_fraction)
    if min(val_start, test_start - val_start, count - test_start) < 1:
        raise UserError(
            f"{count} sequences are too few to split into training, validation and test"
        )
    items = sorted({item for sequence in sequences[:val_start] for item in sequence})
    vocab = Vocabulary(("", "", *items))
    tag_names = TAGS if not config.conll else tuple(sorted({t for row in tags for t in row}))
    tag_ids = {name: index + 1 for index, name in enumerate(tag_names)}
    tags = [np.array([tag_ids[t] for t in row], np.int32) for row in tags]
    ids = encode_sequences(sequences, vocab, config)
    source |= {"sequences": count, "vocabulary": vocab.size, "tags": list(tag_names)}
    return Datasets(
        ids=ids,
        tags=tags,
        val_start=val_start,
        test_start=test_start,
        vocab=vocab,
        tag_names=tag_names,
        source=source,
        train=padded_batches(ids[:val_start], tags[:val_start], config, shuffle=True),
        val=padded_batches(ids[val_start:test_start], tags[val_start:test_start], config),
    )


def encode_sequences(
    sequences: list[list[str]], vocab: Vocabulary, config: Config
) -> list[np.ndarray]:
    """Ids of every sequence: CoNLL tokens by lookup; characters through tensorflow-text,
    all sequences in one pass, then cut back into sequences."""
    if config.conll:
        return [vocab.encode(sequence)[0] for sequence in sequences]
    ids = encode(split_characters("".join("".join(s) for s in sequences)), vocab)
    return np.split(ids, np.cumsum([len(s) for s in sequences])[:-1])


def padded_batches(
    ids: list[np.ndarray], tags: list[np.ndarray], config: Config, shuffle: bool = False
) -> tf.data.Dataset:
    """Right-padded batches ({ids}, tags), 0 for padding in both; with ``shuffle``, in each
    epoch's order (``epochs.shuffled``)."""
    if shuffle:
        ragged = [
            tf.RaggedTensor.from_row_lengths(
                np.concatenate(rows).astype(np.int32), list(map(len, rows))
            )
            for rows in (ids, tags)
        ]
        return (
            shuffled(({"ids": ragged[0]}, ragged[1]), config.seed)
            .padded_batch(config.batch_size)
            .prefetch(tf.data.AUTOTUNE)
        )
    signature = (
        {"ids": tf.TensorSpec([None], tf.int32)},
        tf.TensorSpec([None], tf.int32),
    )
    dataset = tf.data.Dataset.from_generator(
        lambda: (({"ids": i}, t) for i, t in zip(ids, tags, strict=True)),
        output_signature=signature,
    ).apply(tf.data.experimental.assert_cardinality(len(ids)))  # so Keras knows an epoch's end
    return dataset.padded_batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


# The task contract's training hooks: this task adds no callbacks.
log_callbacks = no_log_callbacks
callbacks = no_callbacks
check_decoding = no_decoding_check  # one graph call gives each output


def build_model(config: Config, data: Datasets) -> keras.Model:
    """Ids -> Embedding (0 masks padding) -> recurrent stack, bidirectional by default ->
    tag logits at every step."""
    ids = keras.Input(shape=(None,), dtype="int32", name="ids")
    embedding = keras.layers.Embedding(
        data.vocab.size, config.embedding_size, mask_zero=True, name="embedding"
    )
    x = embedding(ids)
    x = configured_stack(x, config, return_sequences=True)
    logits = keras.layers.Dense(len(data.tag_names) + 1, name="tag_logits", dtype=FLOAT32)(x)
    return keras.Model({"ids": ids}, {"tag_logits": logits}, name="tagger")


def compile_args(config: Config, data: Datasets) -> dict[str, Any]:
    return {
        "loss": {"tag_logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
        "metrics": {"tag_logits": [keras.metrics.SparseCategoricalAccuracy("token_accuracy")]},
    }


def export_graphs(model: keras.Model, config: Config, run: RunDir) -> list[ExportGraph]:
    vocab_size = model.get_layer("embedding").input_dim

    def sample(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        ids = rng.integers(1, vocab_size, size=(batch, length), dtype=np.int32)
        lengths = rng.integers(1, length + 1, size=batch)
        ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
        return {"ids": ids}

    return [
        ExportGraph(
            name=model.name,
            model=model,
            inputs={"ids": ((None, None), "int32")},
            outputs=["tag_logits"],
            sample=sample,
            lengths=(12, 30),
            runtime={
                "task": "tagging",
                "vocab": "vocab/vocab.json",
                "unit": "token" if config.conll else "character",
                "max_length": config.max_length,
            },
            masked_input="ids",
        )
    ]


def predict_tags(model: keras.Model, ids: list[np.ndarray], config: Config) -> list[np.ndarray]:
    """The most likely tag id of every item (never padding)."""
    predictions = []
    for start in range(0, len(ids), config.batch_size):
        rows = ids[start : start + config.batch_size]
        batch = np.zeros((len(rows), max(map(len, rows))), np.int32)
        for index, row in enumerate(rows):
            batch[index, : len(row)] = row
        logits = keras.ops.convert_to_numpy(model({"ids": batch}, training=False)["tag_logits"])
        logits[..., 0] = -np.inf
        best = np.argmax(logits, axis=-1)
        predictions += [best[index, : len(row)] for index, row in enumerate(rows)]
    return predictions


def tag_report(truth: np.ndarray, predicted: np.ndarray, tag_names) -> dict[str, Any]:
    """Token accuracy, per-tag precision, recall and F1, and their macro average."""
    per_tag = {}
    for index, name in enumerate(tag_names, start=1):
        hits = int(np.sum((predicted == index) & (truth == index)))
        said, real = int(np.sum(predicted == index)), int(np.sum(truth == index))
        precision = hits / said if said else 0.0
        recall = hits / real if real else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_tag[name] = {"precision": precision, "recall": recall, "f1": f1, "support": real}
    present = [scores["f1"] for scores in per_tag.values() if scores["support"]]
    return {
        "token_accuracy": float(np.mean(truth == predicted)),
        "macro_f1": float(np.mean(present)),
        "per_tag": per_tag,
    }


def evaluate(
    model: keras.Model, untrained: keras.Model, data: Datasets, config: Config, run: RunDir
) -> dict[str, Any]:
    truth = np.concatenate(data.tags[data.test_start :])
    predicted = np.concatenate(predict_tags(model, data.ids[data.test_start :], config))
    return tag_report(truth, predicted, data.tag_names) | {"test_items": len(truth)}


def format_metrics(metrics: dict[str, Any], config: Config) -> str:
    lines = [
        f"token accuracy {metrics['token_accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f} "
        f"({metrics['test_items']} test items)",
        "",
        "| tag | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, scores in metrics["per_tag"].items():
        lines.append(
            f"| {name} | {scores['precision']:.4f} | {scores['recall']:.4f} "
            f"| {scores['f1']:.4f} | {scores['support']} |"
        )
    return "\n".join(lines)
