"""The charlm task's network: the model, its stateless twin, the metric and the callbacks
that training uses."""

from __future__ import annotations

import math
from typing import Any

import keras

from keras_rnn.layers import FLOAT32, configured_stack
from keras_rnn.tasks.charlm import Config
from keras_rnn.tasks.charlm.data import Datasets


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
    logits = keras.layers.Dense(vocab_size, name="logits", dtype=FLOAT32)(x)
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
