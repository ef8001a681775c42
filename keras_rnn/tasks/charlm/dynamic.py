"""Dynamic evaluation (Krause et al., "Dynamic Evaluation of Neural Sequence Models", 2018):
a split read as one stream of segments, the state carried from segment to segment. Each
segment is scored with the current weights, then the weights take one SGD step on that
segment's loss. Every character is still predicted from the text before it only, so the
figure is what an arithmetic coder driven by the adapting model would spend: the comparison
with xz, whose dictionary also grows with what it has read. A copy of the model learns; the
trained model is left as it was."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from keras_rnn import precision
from keras_rnn.tasks.charlm import Config
from keras_rnn.tasks.charlm.generation import state_model, state_names
from serving.progress import Progress

LN2 = math.log(2)


def dynamic_bits_per_char(
    model: keras.Model, config: Config, ids: np.ndarray, rate: float, segment: int, label: str = ""
) -> float:
    """Bits per character of ``ids[1:]``, each predicted from the ids before it, with
    ``model`` adapted by SGD at ``rate`` after every ``segment`` characters (``rate`` 0: the
    static figure of the text read as one stream); ``label``: as ``segment_nats``."""
    nats = segment_nats(model, config, ids, rate, segment, label)
    return float(nats.sum()) / (len(ids) - 1) / LN2


def segment_nats(
    model: keras.Model, config: Config, ids: np.ndarray, rate: float, segment: int, label: str = ""
) -> np.ndarray:
    """The cross-entropy in nats of each segment of ``segment`` targets of ``ids[1:]`` (the
    last may be shorter), each scored before the weights learn from it; with a ``label``,
    the segments done are shown on a terminal (``serving.progress``)."""
    with precision.dtype_policy("float32"):
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
        stream = state_model(copy, config, None, "stream")
    names = state_names(config)
    variables = stream.trainable_variables
    optimizer = keras.optimizers.SGD(rate)
    optimizer.build(variables)
    signature = [
        tf.TensorSpec((1, None), tf.int32),
        tf.TensorSpec((1, None), tf.int32),
        [tf.TensorSpec((1, config.units), tf.float32) for _ in names],
    ]

    @tf.function(input_signature=signature)
    def score_then_learn(characters, targets, states):
        with tf.GradientTape() as tape:
            outputs = stream({"characters": characters, **dict(zip(names, states, strict=True))})
            nats = tf.reduce_sum(
                keras.losses.sparse_categorical_crossentropy(
                    targets, outputs["logits"], from_logits=True
                )
            )
            mean = nats / tf.cast(tf.size(targets), nats.dtype)
        optimizer.apply(tape.gradient(mean, variables), variables)
        return nats, [outputs[f"next_{name}"] for name in names]

    ids = np.asarray(ids, np.int32)
    states = [tf.zeros((1, config.units)) for _ in names]
    scores = []
    starts = range(0, len(ids) - 1, segment)
    with Progress(label, len(starts)) as progress:
        for start in starts:
            chunk = ids[start : start + segment + 1]
            nats, states = score_then_learn(chunk[None, :-1], chunk[None, 1:], states)
            scores.append(float(nats))
            progress.advance()
    return np.array(scores)
