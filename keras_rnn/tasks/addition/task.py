"""The addition task's contract (``keras_rnn.tasks.Task``); the package docstring describes
the task."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rnn.epochs import shuffled_batches
from keras_rnn.graphs import ExportGraph
from keras_rnn.layers import FLOAT32, configured_stack
from keras_rnn.runs import RunDir
from keras_rnn.tasks import no_callbacks, no_decoding_check, no_log_callbacks
from keras_rnn.tasks.addition import Config
from serving.runtime.addition import (
    CHARACTERS,
    decode_answers,
    encode_answers,
    encode_queries,
    from_bits,
    operand_pairs,
    to_bits,
)


@dataclasses.dataclass
class Datasets:
    """Operand pairs of each split, and the tf.data pipelines built on them."""

    pairs: dict[str, np.ndarray]  # split -> int64 (n, 2): a, b
    source: dict[str, Any]  # what config.json records about the data
    train: tf.data.Dataset
    val: tf.data.Dataset

    @property
    def assets(self) -> dict[str, bytes]:
        return {}  # no files beside the model


def split_pairs(config: Config) -> dict[str, np.ndarray]:
    """Operand pairs, shuffled with ``data_seed`` and cut into test, val and train: every
    pair in binary mode, ``train_pairs + val_pairs + test_pairs`` distinct ones in decimal."""
    rng = np.random.default_rng(config.data_seed)
    if config.digits:
        limit = 10**config.digits
        wanted = config.train_pairs + config.val_pairs + config.test_pairs
        codes = rng.choice(limit * limit, size=wanted, replace=False)
        pairs = np.stack(np.divmod(codes, limit), axis=1)
    else:
        limit = 2 ** (config.bits - 1)
        a, b = np.meshgrid(np.arange(limit), np.arange(limit), indexing="ij")
        pairs = np.stack([a.ravel(), b.ravel()], axis=1)
        pairs = pairs[rng.permutation(len(pairs))]
    val_stop = config.test_pairs + config.val_pairs
    return {
        "test": pairs[: config.test_pairs],
        "val": pairs[config.test_pairs : val_stop],
        "train": pairs[val_stop:],
    }


def examples(pairs: np.ndarray, config: Config) -> tuple[dict, dict]:
    """Model inputs and targets for ``pairs``: binary {bits: (n, bits, 2)} ->
    {sum_bits: (n, bits, 1)}; decimal {query: (n, 2N+1)} -> {answer: (n, N+1)} ids."""
    if config.digits:
        query = encode_queries(pairs[:, 0], pairs[:, 1], config.digits)
        return {"query": query}, {"answer": encode_answers(pairs.sum(axis=1), config.digits)}
    inputs = operand_pairs(pairs[:, 0], pairs[:, 1], config.bits)
    return {"bits": inputs}, {"sum_bits": to_bits(pairs.sum(axis=1), config.bits)[..., None]}


def make_datasets(config: Config) -> Datasets:
    pairs = split_pairs(config)
    source = {
        "kind": f"decimal addition, {config.digits} digits" if config.digits else "binary addition",
        "bits": config.bits,
        **{f"{split}_pairs": len(values) for split, values in pairs.items()},
        "test_pairs_sha256": hashlib.sha256(pairs["test"].tobytes()).hexdigest(),
    }
    val = tf.data.Dataset.from_tensor_slices(examples(pairs["val"], config))
    return Datasets(
        pairs=pairs,
        source=source,
        train=shuffled_batches(
            examples(pairs["train"], config), config.seed, config.batch_size
        ).prefetch(tf.data.AUTOTUNE),
        val=val.batch(config.batch_size).prefetch(tf.data.AUTOTUNE),
    )


# The task contract's training hooks: this task adds no callbacks.
log_callbacks = no_log_callbacks
callbacks = no_callbacks
check_decoding = no_decoding_check  # one graph call gives each output


def build_model(config: Config, data: Datasets) -> keras.Model:
    """Binary: bits (a_t, b_t) -> recurrent stack (every step) -> sigmoid, the probability
    that sum bit t is 1, for any number of steps. Decimal: see ``decimal_model``."""
    if config.digits:
        return decimal_model(config)
    inputs = keras.Input(shape=(None, 2), name="bits")
    x = configured_stack(inputs, config, return_sequences=True)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="sum_bits", dtype=FLOAT32)(x)
    return keras.Model({"bits": inputs}, {"sum_bits": outputs}, name="binary_adder")


def decimal_model(config: Config) -> keras.Model:
    """The Keras example's seq2seq: query characters -> Embedding -> encoder (last output)
    -> repeated N+1 times -> decoder (every step) -> softmax over the characters."""
    query = keras.Input(shape=(2 * config.digits + 1,), dtype="int32", name="query")
    x = keras.layers.Embedding(len(CHARACTERS), 16, name="embedding")(query)
    x = configured_stack(x, config, name="encoder")
    x = keras.layers.RepeatVector(config.digits + 1, name="repeat")(x)
    x = configured_stack(x, config, return_sequences=True, name="decoder")
    answer = keras.layers.Dense(
        len(CHARACTERS), activation="softmax", name="answer", dtype=FLOAT32
    )(x)
    return keras.Model({"query": query}, {"answer": answer}, name="decimal_adder")


def compile_args(config: Config, data: Datasets) -> dict[str, Any]:
    if config.digits:
        return {
            "loss": {"answer": "sparse_categorical_crossentropy"},
            "metrics": {"answer": [keras.metrics.SparseCategoricalAccuracy("digit_accuracy")]},
        }
    return {
        "loss": {"sum_bits": "binary_crossentropy"},
        "metrics": {"sum_bits": [keras.metrics.BinaryAccuracy(name="bit_accuracy")]},
    }


def export_graphs(model: keras.Model, config: Config, run: RunDir) -> list[ExportGraph]:
    if config.digits:
        return [decimal_graph(model, config)]

    def sample(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"bits": rng.integers(0, 2, size=(batch, length, 2)).astype(np.float32)}

    return [
        ExportGraph(
            name=model.name,
            model=model,
            inputs={"bits": ((None, None, 2), "float32")},
            outputs=["sum_bits"],
            sample=sample,
            lengths=(config.bits, config.bits + 5),
            runtime={"task": "addition", "bits": config.bits},
        )
    ]


def decimal_graph(model: keras.Model, config: Config) -> ExportGraph:
    def sample(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        a, b = rng.integers(0, 10**config.digits, size=(2, batch))
        return {"query": encode_queries(a, b, config.digits)}

    return ExportGraph(
        name=model.name,
        model=model,
        inputs={"query": ((None, 2 * config.digits + 1), "int32")},
        outputs=["answer"],
        sample=sample,
        lengths=(2 * config.digits + 1,),  # the query's length is fixed
        runtime={"task": "addition", "digits": config.digits, "characters": CHARACTERS},
    )


def decimal_answers(model: keras.Model, pairs: np.ndarray, config: Config) -> list[str]:
    inputs, _ = examples(pairs, config)
    answers = []
    for start in range(0, len(pairs), 1024):
        batch = {"query": inputs["query"][start : start + 1024]}
        probabilities = keras.ops.convert_to_numpy(model(batch, training=False)["answer"])
        answers += decode_answers(probabilities)
    return answers


def predicted_sums(model: keras.Model, pairs: np.ndarray, config: Config) -> np.ndarray:
    inputs, _ = examples(pairs, config)
    probabilities = keras.ops.convert_to_numpy(model(inputs, training=False)["sum_bits"])
    return from_bits(probabilities[..., 0])


def evaluate(
    model: keras.Model, untrained: keras.Model, data: Datasets, config: Config, run: RunDir
) -> dict[str, Any]:
    """Exact match (the whole sum right) and bit (or digit) accuracy on the held-out test
    pairs."""
    if config.digits:
        return evaluate_decimal(model, untrained, data, config)
    pairs = data.pairs["test"]
    truth = pairs.sum(axis=1)
    predicted = predicted_sums(model, pairs, config)
    right_bits = to_bits(predicted, config.bits) == to_bits(truth, config.bits)
    shown = pairs[:5]
    return {
        "exact_match": float(np.mean(predicted == truth)),
        "bit_accuracy": float(np.mean(right_bits)),
        "untrained_exact_match": float(np.mean(predicted_sums(untrained, pairs, config) == truth)),
        "train_exact_match": float(
            np.mean(
                predicted_sums(model, data.pairs["train"], config)
                == data.pairs["train"].sum(axis=1)
            )
        ),
        "test_pairs": len(pairs),
        "examples": [
            {"a": int(a), "b": int(b), "predicted": int(p)}
            for (a, b), p in zip(shown, predicted[:5], strict=True)
        ],
    }


def evaluate_decimal(
    model: keras.Model, untrained: keras.Model, data: Datasets, config: Config
) -> dict[str, Any]:
    pairs = data.pairs["test"]
    truth = [str(s) for s in pairs.sum(axis=1)]
    answers = decimal_answers(model, pairs, config)
    width = config.digits + 1
    right_digits = [
        a == b
        for t, p in zip(truth, answers, strict=True)
        for a, b in zip(t.ljust(width), p.ljust(width), strict=True)
    ]
    return {
        "exact_match": float(np.mean([a == t for a, t in zip(answers, truth, strict=True)])),
        "digit_accuracy": float(np.mean(right_digits)),
        "untrained_exact_match": float(
            np.mean(
                [
                    a == t
                    for a, t in zip(decimal_answers(untrained, pairs, config), truth, strict=True)
                ]
            )
        ),
        "test_pairs": len(pairs),
        "examples": [
            {"a": int(a), "b": int(b), "predicted": p}
            for (a, b), p in zip(pairs[:5], answers[:5], strict=True)
        ],
    }


def format_metrics(metrics: dict[str, Any], config: Config) -> str:
    if config.digits:
        title = f"{config.digits}-digit decimal addition"
        rows = [("digit accuracy", "digit_accuracy")]
    else:
        title = f"{config.bits}-bit addition"
        rows = [
            ("bit accuracy", "bit_accuracy"),
            ("exact match on training pairs", "train_exact_match"),
        ]
    rows = [
        ("exact match (whole sum right)", "exact_match"),
        *rows,
        ("exact match before training", "untrained_exact_match"),
    ]
    lines = [
        f"| {title} ({metrics['test_pairs']} held-out pairs) | value |",
        "|---|---:|",
        *(f"| {label} | {metrics[key]:.4f} |" for label, key in rows),
        "",
    ]
    for example in metrics["examples"]:
        a, b, predicted = example["a"], example["b"], example["predicted"]
        mark = "right" if str(predicted) == str(a + b) else f"wrong, {a + b}"
        lines.append(f"{a} + {b} = {predicted} ({mark})")
    return "\n".join(lines)
