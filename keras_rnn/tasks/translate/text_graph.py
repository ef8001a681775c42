"""The ``translate`` graph: strings in, strings out, for TF Serving. Tokenization
(tensorflow-text), the vocabulary lookups, greedy decoding (a ``tf.while_loop`` over the
decoder step) and detokenization all run inside the graph, and give what
``serving.runtime.translate.Translator.greedy`` gives: an empty text translates to an empty
text, and a text longer than the model's limit is refused (an InvalidArgument error, which
TF Serving answers with HTTP 400)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from keras_rnn.text import detokenize_tensor, token_table, tokenize_tensor
from serving.runtime.decoding import RESERVED
from serving.runtime.vocab import END, PAD, START, TokenVocabulary


class TranslateText(keras.layers.Layer):
    """Greedy translation of a batch of strings by the ``encoder`` and ``decoder_step``
    models (``model.encoder_model``, ``model.decoder_step_model``). Built at export time
    only, never saved in a ``.keras`` file."""

    def __init__(
        self,
        encoder: keras.Model,
        step: keras.Model,
        source_vocab: TokenVocabulary,
        target_vocab: TokenVocabulary,
        mode: str,
        max_length: int,
        state_names: list[str],
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.encoder, self.step = encoder, step
        self.source_table = token_table(source_vocab)
        # id -> token; the reserved ids (padding, start, end) become "" and are dropped.
        self.target_tokens = tf.constant(["", "", "", "", *target_vocab.tokens[4:]])
        excluded = tf.scatter_nd(
            [[i] for i in RESERVED], [float("-inf")] * len(RESERVED), [target_vocab.size]
        )
        self.excluded = excluded  # added to the logits: decoding never writes these ids
        self.mode, self.max_length, self.state_names = mode, max_length, state_names

    def call(self, text: tf.Tensor) -> tf.Tensor:
        tokens = tokenize_tensor(text, self.mode)
        lengths = tokens.row_lengths()
        within = tf.debugging.assert_less_equal(
            lengths,
            tf.cast(self.max_length, lengths.dtype),
            message=f"a source is longer than the model limit of {self.max_length} tokens",
        )
        with tf.control_dependencies([within]):
            source = self.source_table.lookup(tokens).to_tensor(default_value=PAD)
        source = tf.pad(source, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(source)[1])]])
        # tf.identity: the step takes plain tensors, not the encoder's masked outputs.
        encoded = {k: tf.identity(v) for k, v in self.encoder({"source": source}).items()}
        batch = tf.shape(source)[0]

        def body(t, previous, done, written, *states):
            feed = {"token": previous, "source": source}
            feed |= {"values": encoded["values"], "keys": encoded["keys"]}
            outputs = self.step(feed | dict(zip(self.state_names, states, strict=True)))
            chosen = tf.argmax(outputs["logits"] + self.excluded, -1, output_type=tf.int32)
            written = written.write(t, tf.where(done, PAD, chosen))
            new_states = [outputs[f"next_{name}"] for name in self.state_names]
            return (t + 1, chosen[:, None], done | (chosen == END), written, *new_states)

        def running(t, previous, done, written, *states):
            return tf.logical_and(t < self.max_length, tf.logical_not(tf.reduce_all(done)))

        start = (
            tf.constant(0),
            tf.fill([batch, 1], START),
            tf.zeros([batch], tf.bool),
            tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
            *(encoded[name] for name in self.state_names),
        )
        _, _, _, written, *_ = tf.while_loop(running, body, start)
        ids = tf.transpose(written.stack())  # (batch, steps); no steps: (0, batch) -> (batch, 0)
        ids = tf.reshape(ids, [batch, -1])
        words = tf.gather(self.target_tokens, ids)
        translations = detokenize_tensor(tf.ragged.boolean_mask(words, words != ""), self.mode)
        return tf.where(lengths > 0, translations, "")


def translate_model(layer: TranslateText) -> keras.Model:
    """``text`` (batch,) strings -> ``translation`` (batch,) strings."""
    text = keras.Input(shape=(), dtype="string", name="text")
    return keras.Model({"text": text}, {"translation": layer(text)}, name="translate")
