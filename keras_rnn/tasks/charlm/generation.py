"""The charlm task's generation: the one-step model (``lm_step``), the Keras step the shared
loop of ``serving.runtime.decoding`` runs, and the sample printed during training."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rnn.layers import rnn_layer
from keras_rnn.tasks.charlm import Config
from serving.runtime.charlm import generate_text
from serving.runtime.decoding import Sampling
from serving.runtime.vocab import Vocabulary


def step_model(model: keras.Model, config: Config) -> keras.Model:
    """``lm_step``: one character and every layer's states in, next-character logits and
    the new states out, with the trained weights. Generation runs it step by step."""
    return state_model(model, config, 1, "lm_step")


def state_model(model: keras.Model, config: Config, length: int | None, name: str) -> keras.Model:
    """The trained network with every layer's states as inputs and outputs, on ``length``
    characters at a time: input ``character`` and logits (batch, vocab) for one, otherwise input
    ``characters`` and logits (batch, time, vocab) (``None``: any length). The embedding and output
    layers are ``model``'s own; the recurrent layers are copies without dropout."""
    input_name = "character" if length == 1 else "characters"
    token = keras.Input(shape=(length,), dtype="int32", name=input_name)
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
    logits = model.get_layer("logits")(x)
    if length == 1:
        logits = keras.layers.Reshape((model.get_layer("logits").units,))(logits)
    outputs = {"logits": logits, **{f"next_{state}": t for state, t in states_out.items()}}
    return keras.Model({input_name: token, **states_in}, outputs, name=name)


def state_names(config: Config) -> list[str]:
    """The step graph's state inputs, in order; each has an output named ``next_<name>``."""
    kinds = ("h", "c") if config.cell == "lstm" else ("h",)
    return [f"state_{index}_{kind}" for index in range(config.layers) for kind in kinds]


def step_runtime(config: Config) -> dict[str, Any]:
    """What the onnxruntime loop (``serving.runtime.charlm``) reads beside the step graph: the
    size of its states and their names, in order."""
    return {"units": config.units, "states": state_names(config)}


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
    model: keras.Model, config: Config, vocab: Vocabulary, prefix: str, settings: Sampling
) -> tuple[str, list[str]]:
    """Text generated after ``prefix`` by the Keras model, and the prefix's unknown
    characters."""
    step = keras_step(step_model(model, config), config)
    states = len(state_names(config))
    return generate_text(step, states, config.units, vocab, prefix, settings)


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
                Sampling(self.config.sample_length, 0.5, 0, self.config.seed),
            )
            print(f"sample after epoch {epoch + 1}: {self.config.sample_prefix + text!r}")
