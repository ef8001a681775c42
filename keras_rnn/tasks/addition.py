"""Binary addition as in the course: two numbers in, their sum out, one bit per step, least
significant bit first, so the network must learn to carry.

Every operand pair below 2**(bits-1) (so the sum fits in ``bits`` bits: 16,384 pairs at 8
bits) is enumerated and split once, seeded: ``test_pairs`` held out for testing,
``val_pairs`` for early stopping, the rest for training. No pair is in two splits.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rnn.config import AdditionConfig as Config
from keras_rnn.graphs import ExportGraph
from keras_rnn.layers import recurrent_stack
from keras_rnn.runs import RunDir
from serving.runtime.addition import from_bits, operand_pairs, to_bits


@dataclasses.dataclass
class Datasets:
    """Operand pairs of each split, and the tf.data pipelines built on them."""

    pairs: dict[str, np.ndarray]  # split -> int64 (n, 2): a, b
    source: dict[str, Any]  # what config.json records about the data
    train: tf.data.Dataset
    val: tf.data.Dataset


def split_pairs(config: Config) -> dict[str, np.ndarray]:
    """All operand pairs, shuffled with ``data_seed`` and cut into test, val and train."""
    limit = 2 ** (config.bits - 1)
    a, b = np.meshgrid(np.arange(limit), np.arange(limit), indexing="ij")
    pairs = np.stack([a.ravel(), b.ravel()], axis=1)
    pairs = pairs[np.random.default_rng(config.data_seed).permutation(len(pairs))]
    val_stop = config.test_pairs + config.val_pairs
    return {
        "test": pairs[: config.test_pairs],
        "val": pairs[config.test_pairs : val_stop],
        "train": pairs[val_stop:],
    }


def examples(pairs: np.ndarray, bits: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Model inputs {bits: (n, bits, 2)} and targets {sum_bits: (n, bits, 1)} for ``pairs``."""
    inputs = operand_pairs(pairs[:, 0], pairs[:, 1], bits)
    return {"bits": inputs}, {"sum_bits": to_bits(pairs.sum(axis=1), bits)[..., None]}


def make_datasets(config: Config) -> Datasets:
    pairs = split_pairs(config)
    source = {
        "kind": "binary addition",
        "bits": config.bits,
        **{f"{split}_pairs": len(values) for split, values in pairs.items()},
        "test_pairs_sha256": hashlib.sha256(pairs["test"].tobytes()).hexdigest(),
    }
    train = tf.data.Dataset.from_tensor_slices(examples(pairs["train"], config.bits))
    val = tf.data.Dataset.from_tensor_slices(examples(pairs["val"], config.bits))
    return Datasets(
        pairs=pairs,
        source=source,
        train=train.shuffle(len(pairs["train"]), seed=config.seed)
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE),
        val=val.batch(config.batch_size).prefetch(tf.data.AUTOTUNE),
    )


def build_model(config: Config, data: Datasets) -> keras.Model:
    """Bits (a_t, b_t) -> recurrent stack (every step) -> sigmoid: the probability that sum
    bit t is 1. Takes any number of steps."""
    inputs = keras.Input(shape=(None, 2), name="bits")
    x = recurrent_stack(
        inputs,
        config.cell,
        config.units,
        layers=config.layers,
        bidirectional=config.bidirectional,
        merge_mode=config.merge_mode,
        dropout=config.dropout,
        return_sequences=True,
    )
    outputs = keras.layers.Dense(1, activation="sigmoid", name="sum_bits")(x)
    return keras.Model({"bits": inputs}, {"sum_bits": outputs}, name="binary_adder")


def compile_args(config: Config, data: Datasets) -> dict[str, Any]:
    return {
        "loss": {"sum_bits": "binary_crossentropy"},
        "metrics": {"sum_bits": [keras.metrics.BinaryAccuracy(name="bit_accuracy")]},
    }


def export_graphs(model: keras.Model, config: Config) -> list[ExportGraph]:
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


def predicted_sums(model: keras.Model, pairs: np.ndarray, bits: int) -> np.ndarray:
    inputs, _ = examples(pairs, bits)
    probabilities = keras.ops.convert_to_numpy(model(inputs, training=False)["sum_bits"])
    return from_bits(probabilities[..., 0])


def evaluate(
    model: keras.Model, untrained: keras.Model, data: Datasets, config: Config, run: RunDir
) -> dict[str, Any]:
    """Exact match (the whole sum right) and bit accuracy on the held-out test pairs."""
    pairs = data.pairs["test"]
    truth = pairs.sum(axis=1)
    predicted = predicted_sums(model, pairs, config.bits)
    right_bits = to_bits(predicted, config.bits) == to_bits(truth, config.bits)
    shown = pairs[:5]
    return {
        "exact_match": float(np.mean(predicted == truth)),
        "bit_accuracy": float(np.mean(right_bits)),
        "untrained_exact_match": float(
            np.mean(predicted_sums(untrained, pairs, config.bits) == truth)
        ),
        "train_exact_match": float(
            np.mean(
                predicted_sums(model, data.pairs["train"], config.bits)
                == data.pairs["train"].sum(axis=1)
            )
        ),
        "test_pairs": len(pairs),
        "examples": [
            {"a": int(a), "b": int(b), "predicted": int(p)}
            for (a, b), p in zip(shown, predicted[:5], strict=True)
        ],
    }


def format_metrics(metrics: dict[str, Any], config: Config) -> str:
    lines = [
        f"| {config.bits}-bit addition ({metrics['test_pairs']} held-out pairs) | value |",
        "|---|---:|",
        f"| exact match (whole sum right) | {metrics['exact_match']:.4f} |",
        f"| bit accuracy | {metrics['bit_accuracy']:.4f} |",
        f"| exact match on training pairs | {metrics['train_exact_match']:.4f} |",
        f"| exact match before training | {metrics['untrained_exact_match']:.4f} |",
        "",
    ]
    for example in metrics["examples"]:
        a, b, predicted = example["a"], example["b"], example["predicted"]
        mark = "right" if predicted == a + b else f"wrong, {a + b}"
        lines.append(f"{a} + {b} = {predicted} ({mark})")
    return "\n".join(lines)
