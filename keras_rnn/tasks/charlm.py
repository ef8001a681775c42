"""Character language model: predict each next character of a text.

The embedded corpus is a fixed list of Python standard-library source files read from the
running interpreter (``CORPUS``, about 1.9 MB); ``--text FILE`` trains on any UTF-8 text. The
text is split by position: training, then validation, then test (the last 5%). Characters
are split with tensorflow-text's Unicode tokenizer; the vocabulary (every character of the
training part, plus reserved padding and unknown ids) is written to ``vocab/vocab.json``.
Training takes random windows of ``sequence_length`` characters (the state starts from zeros
in every window) or, with ``--batching consecutive``, carries the state across windows.
Validation and test read each split as long rows (``evaluation_rows``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import sysconfig
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tensorflow_text

from keras_rnn.config import CharLMConfig as Config
from keras_rnn.errors import UserError
from keras_rnn.graphs import ExportGraph
from keras_rnn.layers import configured_stack, rnn_layer
from keras_rnn.runs import RunDir, atomic_write_bytes
from serving.runtime.charlm import UNKNOWN, Vocabulary, generate_text

MAX_ROW = 2048  # characters per evaluation row (the context a character is predicted from)
MAX_LOGITS = 2**24  # logits per evaluation batch (64 MB of float32)

# Standard-library modules of the embedded corpus, in this order (paths under stdlib).
CORPUS = (
    "argparse.py", "ast.py", "calendar.py", "collections/__init__.py", "configparser.py",
    "csv.py", "dataclasses.py", "datetime.py", "difflib.py", "email/message.py", "enum.py",
    "fractions.py", "functools.py", "gettext.py", "heapq.py", "http/client.py", "inspect.py",
    "json/decoder.py", "json/encoder.py", "locale.py", "logging/__init__.py", "pathlib.py",
    "pprint.py", "random.py", "shutil.py", "statistics.py", "string.py", "subprocess.py",
    "tarfile.py", "textwrap.py", "threading.py", "tokenize.py", "typing.py", "zipfile.py",
)  # fmt: skip


@dataclasses.dataclass
class Datasets:
    """The encoded text, its split points, the vocabulary and the tf.data pipelines."""

    ids: np.ndarray  # int32, the whole text
    val_start: int
    test_start: int
    vocab: Vocabulary
    source: dict[str, Any]
    train: tf.data.Dataset
    val: tf.data.Dataset


def read_text(config: Config) -> tuple[str, dict[str, Any]]:
    """The training text and what config.json records about it."""
    if config.text:
        path = Path(config.text)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"text file not found: {path}") from None
        except IsADirectoryError:
            raise UserError(f"{path} is a directory, not a text file") from None
        except UnicodeDecodeError as error:
            raise UserError(f"{path} is not UTF-8 text (byte {error.start})") from None
        source = {"kind": "text file", "file": path.name}
    else:
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        text = "".join((stdlib / name).read_text(encoding="utf-8") for name in CORPUS)
        source = {"kind": "Python standard library", "files": list(CORPUS)}
    if not text.strip():
        raise UserError(f"{config.text or 'the corpus'} is empty: nothing to learn from")
    source["characters"] = len(text)
    source["text_sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return text, source


def split_characters(text: str) -> np.ndarray:
    """The text's Unicode code points, split by tensorflow-text."""
    tokenizer = tensorflow_text.UnicodeCharTokenizer()
    return tokenizer.tokenize(tf.constant(text)).numpy().astype(np.int64)


def encode(codepoints: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """Ids of code points through a TensorFlow lookup table; characters outside the
    vocabulary become UNKNOWN."""
    keys = tf.constant([ord(char) for char in vocab.characters[2:]], tf.int64)
    values = tf.range(2, vocab.size, dtype=tf.int32)
    table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), UNKNOWN)
    return table.lookup(tf.constant(codepoints, tf.int64)).numpy()


def make_datasets(config: Config) -> Datasets:
    text, source = read_text(config)
    codepoints = split_characters(text)
    length = len(codepoints)
    test_start = length - round(length * config.test_fraction)
    val_start = test_start - round(length * config.val_fraction)
    parts = (
        ("training", val_start),
        ("validation", test_start - val_start),
        ("test", length - test_start),
    )
    for split, have in parts:
        if have <= config.sequence_length:
            raise UserError(
                f"{config.text or 'the corpus'} is too short: its {split} part has {have} "
                f"characters, and --sequence-length {config.sequence_length} needs more"
            )
    characters = sorted(set(map(chr, np.unique(codepoints[:val_start]))))
    vocab = Vocabulary(("", "", *characters))
    ids = encode(codepoints, vocab)
    source["vocabulary"] = vocab.size
    if config.batching == "consecutive":
        train = streams(ids[:val_start], config)
        val = streams(ids[val_start:test_start], config)
    else:
        windows = (val_start - 1) // config.sequence_length
        train = (
            tf.data.Dataset.random(seed=config.seed)
            .take(windows)
            .map(lambda r: _window(ids, r % (val_start - config.sequence_length), config))
            .batch(config.batch_size, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        val = evaluation_rows(ids[val_start:test_start], vocab.size)
    return Datasets(
        ids=ids,
        val_start=val_start,
        test_start=test_start,
        vocab=vocab,
        source=source,
        train=train,
        val=val,
    )


def _window(ids: np.ndarray, start: tf.Tensor, config: Config):
    chunk = tf.constant(ids)[start : start + config.sequence_length + 1]
    return {"characters": chunk[:-1]}, chunk[1:]


def streams(ids: np.ndarray, config: Config) -> tf.data.Dataset:
    """Truncated backpropagation through time: the text cut into ``batch_size`` streams; batch
    t holds window t of every stream, so row b of batch t+1 continues row b of batch t."""
    rows, steps = config.batch_size, config.sequence_length
    windows = (len(ids) - 1) // (rows * steps)
    if windows < 1:
        raise UserError(
            f"a split of {len(ids)} characters cannot fill one batch of {rows} streams x "
            f"{steps} characters: lower --batch-size or --sequence-length"
        )
    span = windows * steps

    def batched(values: np.ndarray) -> np.ndarray:  # (windows, rows, steps)
        return values[: rows * span].reshape(rows, windows, steps).transpose(1, 0, 2)

    return tf.data.Dataset.from_tensor_slices(({"characters": batched(ids[:-1])}, batched(ids[1:])))


def evaluation_rows(ids: np.ndarray, vocab_size: int) -> tf.data.Dataset:
    """A split cut into as few rows as keep each within ``MAX_ROW`` characters, every row
    read whole from a zero state. Each character is then predicted from everything before it
    in its row, as when the state is carried from window to window; starting every training
    window from zeros instead would charge the model for what it was never shown. Rows are
    batched so that a batch's logits stay within ``MAX_LOGITS`` values."""
    targets = len(ids) - 1
    rows = math.ceil(targets / MAX_ROW)
    span = targets // rows
    inputs = ids[: rows * span].reshape(rows, span)
    labels = ids[1 : rows * span + 1].reshape(rows, span)
    per_batch = max(1, MAX_LOGITS // (span * vocab_size))
    return tf.data.Dataset.from_tensor_slices(({"characters": inputs}, labels)).batch(per_batch)


@keras.saving.register_keras_serializable(package="keras_rnn")
class Perplexity(keras.metrics.Mean):
    """exp of the mean next-character cross-entropy, from logits (or, with ``bits``, that
    entropy in bits per character); ``evaluate`` uses it. Written here because keras-hub,
    which has a Perplexity metric, is not a dependency. Registered, so that a model compiled
    with it loads once this module is imported; the task's own models are not compiled with
    it (``compile_args``)."""

    def __init__(self, name: str = "perplexity", bits: bool = False, **kwargs):
        super().__init__(name=name, **kwargs)
        self.bits = bits

    def update_state(self, y_true, y_pred, sample_weight=None):
        entropy = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
        return super().update_state(entropy, sample_weight)

    def result(self):
        mean = super().result()
        return mean / math.log(2) if self.bits else keras.ops.exp(mean)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bits": self.bits}


def build_model(config: Config, data: Datasets) -> keras.Model:
    """Character ids -> Embedding -> recurrent stack (every step) -> next-character logits.
    With consecutive batching the recurrent layers are stateful (fixed batch size)."""
    return network(config, data.vocab.size, stateful=config.batching == "consecutive")


def network(config: Config, vocab_size: int, stateful: bool = False) -> keras.Model:
    characters = keras.Input(
        shape=(None,),
        batch_size=config.batch_size if stateful else None,
        dtype="int32",
        name="characters",
    )
    x = keras.layers.Embedding(vocab_size, config.embedding_size, name="embedding")(characters)
    x = configured_stack(x, config, return_sequences=True, stateful=stateful)
    if config.dropout:  # as in char-rnn: between layers and before the output layer
        x = keras.layers.Dropout(config.dropout, name="output_dropout")(x)
    logits = keras.layers.Dense(vocab_size, name="logits")(x)
    return keras.Model({"characters": characters}, {"logits": logits}, name="char_lm")


def stateless(model: keras.Model, config: Config) -> keras.Model:
    """``model`` with stateless layers and any batch size, weights copied (evaluation,
    export); the model itself when it is already stateless."""
    if config.batching != "consecutive":
        return model
    twin = network(config, model.get_layer("logits").units)
    twin.set_weights(model.get_weights())
    return twin


class ResetStates(keras.callbacks.Callback):
    """Start every epoch, and every validation pass, from zero states."""

    def _reset(self) -> None:
        for layer in self.model.layers:
            if getattr(layer, "stateful", False):
                layer.reset_state()

    def on_epoch_begin(self, epoch, logs=None):
        self._reset()

    def on_test_begin(self, logs=None):
        self._reset()


def compile_args(config: Config, data: Datasets) -> dict[str, Any]:
    """The loss only: perplexity and bits per character follow from it (``LogPerplexity``).
    A ``Perplexity`` metric here would be saved in model.keras's compile config, and Keras
    deserialises a class of another package only when its module was imported first, so
    plain ``keras.models.load_model`` would fail on it."""
    return {"loss": {"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)}}


class LogPerplexity(keras.callbacks.Callback):
    """Put perplexity and bits per character of training and validation into each epoch's
    logs, from the loss (the mean next-character cross-entropy, in nats), so that history.csv
    shows them. Must come before ``CSVLogger``."""

    def on_epoch_end(self, epoch, logs=None):
        for prefix in ("", "val_"):
            if logs is not None and f"{prefix}loss" in logs:
                loss = float(logs[f"{prefix}loss"])
                logs[f"{prefix}perplexity"] = math.exp(loss)
                logs[f"{prefix}bits_per_char"] = loss / math.log(2)


def log_callbacks(config: Config) -> list[keras.callbacks.Callback]:
    return [LogPerplexity()]


def step_model(model: keras.Model, config: Config) -> keras.Model:
    """``lm_step``: one character and every layer's states in, next-character logits and
    the new states out, with the trained weights. Generation runs it step by step."""
    token = keras.Input(shape=(1,), dtype="int32", name="character")
    x = model.get_layer("embedding")(token)
    states_in, states_out = {}, {}
    kinds = ("h", "c") if config.cell == "lstm" else ("h",)
    for index in range(config.layers):
        trained = model.get_layer(f"rnn_{index}")
        layer = rnn_layer(config.cell, config.units, return_sequences=True, return_state=True)
        inputs = {
            f"state_{index}_{s}": keras.Input((config.units,), name=f"state_{index}_{s}")
            for s in kinds
        }
        x, *new_states = layer(x, initial_state=list(inputs.values()))
        layer.set_weights(trained.get_weights())
        states_in |= inputs
        states_out |= dict(zip(inputs, new_states, strict=True))
    logits = keras.layers.Reshape((model.get_layer("logits").units,))(model.get_layer("logits")(x))
    outputs = {"logits": logits, **{f"next_{name}": t for name, t in states_out.items()}}
    return keras.Model({"character": token, **states_in}, outputs, name="lm_step")


def state_names(config: Config) -> list[str]:
    """The step graph's state inputs, in order; each has an output named ``next_<name>``."""
    kinds = ("h", "c") if config.cell == "lstm" else ("h",)
    return [f"state_{index}_{kind}" for index in range(config.layers) for kind in kinds]


def keras_step(step: keras.Model, config: Config):
    """``step`` as the generation loop calls it: numpy in, numpy out."""
    names = state_names(config)

    @tf.function(reduce_retracing=True)
    def call(inputs):
        return step(inputs, training=False)

    def run(token: np.ndarray, states: list[np.ndarray]):
        outputs = call({"character": token, **dict(zip(names, states, strict=True))})
        logits = keras.ops.convert_to_numpy(outputs["logits"])
        return logits, [keras.ops.convert_to_numpy(outputs[f"next_{n}"]) for n in names]

    return run


def keras_generate(
    model: keras.Model,
    config: Config,
    vocab: Vocabulary,
    prefix: str,
    length: int,
    temperature: float,
    top_k: int,
    seed: int,
) -> tuple[str, list[str]]:
    """Text generated after ``prefix`` by the Keras model, and the prefix's unknown
    characters."""
    step = keras_step(step_model(model, config), config)
    states = len(state_names(config))
    return generate_text(
        step, states, config.units, vocab, prefix, length, temperature, top_k, seed
    )


class SampleEveryEpochs(keras.callbacks.Callback):
    """Print a sample from a fixed prefix every ``every`` epochs (temperature 0.5, seeded)."""

    def __init__(self, config: Config, vocab: Vocabulary):
        super().__init__()
        self.config, self.vocab = config, vocab

    def on_epoch_end(self, epoch: int, logs=None):
        if self.config.sample_every and (epoch + 1) % self.config.sample_every == 0:
            text, _ = keras_generate(
                self.model,
                self.config,
                self.vocab,
                self.config.sample_prefix,
                self.config.sample_length,
                temperature=0.5,
                top_k=0,
                seed=self.config.seed,
            )
            print(f"sample after epoch {epoch + 1}: {self.config.sample_prefix + text!r}")


def callbacks(config: Config, data: Datasets) -> list[keras.callbacks.Callback]:
    extra = [ResetStates()] if config.batching == "consecutive" else []
    return [*extra, SampleEveryEpochs(config, data.vocab)]


def export_graphs(model: keras.Model, config: Config) -> list[ExportGraph]:
    """``char_lm`` (a window of ids -> logits at every step) and ``lm_step`` (one id and the
    states -> logits and the next states, for generation)."""
    model = stateless(model, config)
    vocab_size = model.get_layer("logits").units
    names = state_names(config)
    runtime = {
        "task": "charlm",
        "vocab": "vocab/vocab.json",
        "units": config.units,
        "states": names,
    }

    def windows(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"characters": rng.integers(2, vocab_size, size=(batch, length), dtype=np.int32)}

    def steps(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        feed = {"character": rng.integers(2, vocab_size, size=(batch, 1), dtype=np.int32)}
        return feed | {n: rng.normal(size=(batch, config.units)).astype(np.float32) for n in names}

    return [
        ExportGraph(
            name=model.name,
            model=model,
            inputs={"characters": ((None, None), "int32")},
            outputs=["logits"],
            sample=windows,
            lengths=(17, 40),
            runtime=runtime,
        ),
        ExportGraph(
            name="lm_step",
            model=step_model(model, config),
            inputs={"character": ((None, 1), "int32")}
            | {n: ((None, config.units), "float32") for n in names},
            outputs=["logits", *(f"next_{n}" for n in names)],
            sample=steps,
            lengths=(1,),
            runtime=runtime | {"default": True},  # what serving.predict generates with
        ),
    ]


def evaluate(
    model: keras.Model, untrained: keras.Model, data: Datasets, config: Config, run: RunDir
) -> dict[str, Any]:
    """Perplexity and bits per character on validation and test; writes the vocabulary."""
    atomic_write_bytes(run.path / "vocab" / "vocab.json", data.vocab.to_json())
    model = stateless(model, config)
    parts = {"val": data.ids[data.val_start : data.test_start], "test": data.ids[data.test_start :]}
    metrics = {}
    for split, ids in parts.items():
        print(f"evaluating on {split}: {len(ids):,} characters", flush=True)  # progress
        entropy = Perplexity(bits=True)
        for inputs, targets in evaluation_rows(ids, data.vocab.size):
            entropy.update_state(targets, model(inputs, training=False)["logits"])
        bits = float(entropy.result())
        metrics[f"{split}_bits_per_char"] = bits
        metrics[f"{split}_perplexity"] = 2.0**bits
    metrics["vocabulary"] = data.vocab.size
    print("writing a 400-character sample", flush=True)  # progress
    metrics["sample"] = (
        config.sample_prefix
        + keras_generate(model, config, data.vocab, config.sample_prefix, 400, 0.5, 0, config.seed)[
            0
        ]
    )
    return metrics


def format_metrics(metrics: dict[str, Any], config: Config) -> str:
    return "\n".join(
        [
            "| split | perplexity | bits per character |",
            "|---|---:|---:|",
            *(
                f"| {split} | {metrics[f'{split}_perplexity']:.3f} "
                f"| {metrics[f'{split}_bits_per_char']:.3f} |"
                for split in ("val", "test")
            ),
            "",
            f"sample (temperature 0.5): {metrics['sample']!r}",
        ]
    )
