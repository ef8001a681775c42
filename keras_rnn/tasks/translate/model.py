"""The encoder-decoder: a masked bidirectional encoder, a decoder started from its last state,
and one of Bahdanau's, Luong's or no attention, as Keras Functional models.

Luong (``luong-dot``, ``luong-general``, ``luong-concat``): attention comes after the decoder
RNN, so in training the decoder is one cuDNN-eligible layer over the whole target. Its output
is ``tanh(W_c [context; h_t])``. Bahdanau (``bahdanau``): the context computed from the
previous state enters the RNN's input at each step, so training runs ``BahdanauCell`` inside
``keras.layers.RNN`` (not cuDNN-eligible). ``none``: the plain encoder-decoder.

Scores use Keras's layers: ``Attention`` (dot) for ``luong-dot``, and for ``luong-general``
with the query through ``W_a`` first; ``AdditiveAttention`` (``v . tanh(q + k)``) for
``luong-concat`` and ``bahdanau`` with query and keys through their own ``Dense`` layers,
which is ``v . tanh(W_1 h_t + W_2 h_s)``. The source mask is applied to every score.

``encoder_model`` and ``decoder_step_model`` are the same layers as the trained model, cut at
the state: what decoding (greedy, beam) steps through, in Keras and once exported.
"""

from __future__ import annotations

from typing import Any

import keras

from keras_rnn.layers import FLOAT32, rnn_layer
from keras_rnn.tasks.translate import Config

ADDITIVE = ("luong-concat", "bahdanau")


def state_count(config: Config) -> int:
    """Recurrent states of the decoder: h, or h and c for an LSTM."""
    return 2 if config.cell == "lstm" else 1


@keras.saving.register_keras_serializable(package="keras_rnn")
class BahdanauCell(keras.layers.Layer):
    """One decoder step of Bahdanau et al. (2015): attend from the previous state, then run
    the recurrent cell on [input; context]. Its output is [h_t; context].

    The encoder's outputs and keys and the source mask (``memory``) are the same at every
    step. tf.keras 2 passed such tensors to each step through ``RNN(..., constants=)``;
    Keras 3's ``keras.layers.RNN`` has no such argument, so ``BahdanauDecoder`` sets
    ``memory`` on the cell just before it calls the RNN, and clears it after.
    """

    def __init__(self, cell: str, units: int, attention_units: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.cell_type, self.units, self.attention_units = cell, units, attention_units
        cell_class = keras.layers.LSTMCell if cell == "lstm" else keras.layers.GRUCell
        self.recurrent = cell_class(units, name="recurrent")
        self.query = keras.layers.Dense(attention_units, use_bias=False, name="attention_query")
        self.attention = keras.layers.AdditiveAttention(name="attention")
        self.state_size = self.recurrent.state_size
        self.memory: tuple | None = None

    def build(self, input_shape: tuple) -> None:
        memory_size = self.units  # the bidirectional encoder's outputs: the decoder's size
        self.query.build((None, self.units))
        self.attention.build([(None, 1, self.attention_units), (None, None, memory_size)])
        self.recurrent.build((None, input_shape[-1] + memory_size))
        super().build(input_shape)

    def attend(self, state, values, keys, source_mask) -> tuple:
        """Attention from the decoder's ``state`` h (batch, units) over the source steps s:
        score_s = v . tanh(W_1 h + W_2 h_s) (``keys`` hold W_2 h_s), less 1e9 where
        ``source_mask`` is False (padding); weights = softmax(score); context = sum_s
        weights_s values_s. Returns the context (batch, units) and the weights (batch,
        source length)."""
        query = keras.ops.expand_dims(self.query(state), 1)  # W_1 h: a query of one step
        context, weights = self.attention(  # Keras's v . tanh(query + keys), masked softmax
            [query, values, keys], mask=[None, source_mask], return_attention_scores=True
        )
        return context[:, 0], weights[:, 0]

    def call(self, inputs, states, training: bool = False):
        context, _ = self.attend(states[0], *self.memory)
        output, new_states = self.recurrent(
            keras.ops.concatenate([inputs, context], axis=-1), states, training=training
        )
        return keras.ops.concatenate([output, context], axis=-1), new_states

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], 2 * self.units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "cell": self.cell_type,
            "units": self.units,
            "attention_units": self.attention_units,
        }


@keras.saving.register_keras_serializable(package="keras_rnn")
class BahdanauDecoder(keras.layers.Layer):
    """The Bahdanau decoder over a whole target (teacher forcing): ``BahdanauCell`` inside
    ``keras.layers.RNN``, returning [h_t; context_t] for every step and the last states."""

    def __init__(self, cell: str, units: int, attention_units: int, **kwargs: Any):
        super().__init__(**kwargs)
        self.step = BahdanauCell(cell, units, attention_units, name="step")
        self.rnn = keras.layers.RNN(self.step, return_sequences=True, return_state=True)
        self.cell_type, self.units, self.attention_units = cell, units, attention_units
        self.supports_masking = True  # the embedding's mask is target_mask, passed explicitly

    def build(self, input_shape: tuple) -> None:
        self.rnn.build(input_shape)  # the embedded target's shape
        super().build(input_shape)

    def compute_mask(self, *args, **kwargs) -> None:
        return None  # the loss ignores padding by its id (ignore_class)

    def call(self, inputs, values, keys, source_mask, initial_state, target_mask, mask=None):
        self.step.memory = (values, keys, source_mask)
        try:
            return self.rnn(inputs, initial_state=initial_state, mask=target_mask)
        finally:
            self.step.memory = None

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "cell": self.cell_type,
            "units": self.units,
            "attention_units": self.attention_units,
        }


def encode(config: Config, layers: dict[str, keras.layers.Layer], source) -> tuple:
    """Encoder outputs, attention keys and the decoder's initial states for ``source`` ids."""
    hidden = layers["source_embedding"](source)
    states: list = []
    for index in range(config.layers):
        if index:
            hidden = layers[f"encoder_dropout_{index}"](hidden)
        hidden, *states = layers[f"encoder_{index + 1}"](hidden)
    # Bidirectional's states: forward ones, then backward ones; each decoder state is both.
    half = len(states) // 2
    initial = [layers[f"initial_state_{i}"]([states[i], states[half + i]]) for i in range(half)]
    keys = layers["attention_key"](hidden) if "attention_key" in layers else hidden
    return hidden, keys, initial


def make_layers(config: Config, source_size: int, target_size: int) -> dict[str, Any]:
    """Every layer of the model, by name (the names ``encoder_model`` and
    ``decoder_step_model`` look up in a trained model)."""
    decoder_units = 2 * config.units
    layers: dict[str, Any] = {
        "source_embedding": keras.layers.Embedding(
            source_size, config.embedding_size, mask_zero=True, name="source_embedding"
        ),
        "target_embedding": keras.layers.Embedding(
            target_size, config.embedding_size, mask_zero=True, name="target_embedding"
        ),
        "logits": keras.layers.Dense(target_size, name="logits", dtype=FLOAT32),
    }
    for index in range(config.layers):
        layer = rnn_layer(config.cell, config.units, return_sequences=True, return_state=True)
        layers[f"encoder_{index + 1}"] = keras.layers.Bidirectional(
            layer, name=f"encoder_{index + 1}"
        )
        if index:
            layers[f"encoder_dropout_{index}"] = keras.layers.Dropout(
                config.dropout, name=f"encoder_dropout_{index}"
            )
    for i in range(state_count(config)):
        layers[f"initial_state_{i}"] = keras.layers.Concatenate(name=f"initial_state_{i}")
    if config.attention in ADDITIVE:
        layers["attention_key"] = keras.layers.Dense(
            config.attention_units, use_bias=False, name="attention_key"
        )
    if config.attention == "bahdanau":
        layers["decoder"] = BahdanauDecoder(
            config.cell, decoder_units, config.attention_units, name="decoder"
        )
        return layers
    layers["decoder"] = rnn_layer(
        config.cell, decoder_units, return_sequences=True, return_state=True, name="decoder"
    )
    if config.attention == "none":
        return layers
    if config.attention == "luong-dot":
        layers["attention"] = keras.layers.Attention(name="attention")
    elif config.attention == "luong-general":
        layers["attention_query"] = keras.layers.Dense(
            decoder_units, use_bias=False, name="attention_query"
        )
        layers["attention"] = keras.layers.Attention(name="attention")
    else:
        layers["attention_query"] = keras.layers.Dense(
            config.attention_units, use_bias=False, name="attention_query"
        )
        layers["attention"] = keras.layers.AdditiveAttention(name="attention")
    layers["attention_output"] = keras.layers.Dense(
        decoder_units, activation="tanh", use_bias=False, name="attention_output"
    )
    layers["context_and_state"] = keras.layers.Concatenate(name="context_and_state")
    return layers


def luong_output(layers: dict[str, Any], hidden, values, keys, target_mask, source_mask):
    """Luong's attentional output ``tanh(W_c [context; h_t])`` and the attention weights."""
    query = layers["attention_query"](hidden) if "attention_query" in layers else hidden
    context, weights = layers["attention"](
        [query, values, keys], mask=[target_mask, source_mask], return_attention_scores=True
    )
    return layers["attention_output"](layers["context_and_state"]([context, hidden])), weights


def build_model(config: Config, source_size: int, target_size: int) -> keras.Model:
    """The training model: ``source`` and ``target_in`` ids (START, then the target) in,
    ``logits`` for each next target token out (masked where ``target_in`` is padding)."""
    layers = make_layers(config, source_size, target_size)
    source = keras.Input((None,), dtype="int32", name="source")
    target_in = keras.Input((None,), dtype="int32", name="target_in")
    source_mask = keras.ops.not_equal(source, 0)
    target_mask = keras.ops.not_equal(target_in, 0)
    values, keys, initial = encode(config, layers, source)
    embedded = layers["target_embedding"](target_in)
    if config.attention == "bahdanau":
        hidden, *_ = layers["decoder"](embedded, values, keys, source_mask, initial, target_mask)
    else:  # mask= explicitly: Keras drops the mask of a layer called with initial_state=
        hidden, *_ = layers["decoder"](embedded, initial_state=initial, mask=target_mask)
        if config.attention != "none":
            hidden, _ = luong_output(layers, hidden, values, keys, target_mask, source_mask)
    logits = layers["logits"](hidden)
    return keras.Model(
        {"source": source, "target_in": target_in}, {"logits": logits}, name="translator"
    )


def trained_layers(model: keras.Model) -> dict[str, Any]:
    return {layer.name: layer for layer in model.layers}


def encoder_model(model: keras.Model, config: Config) -> keras.Model:
    """``source`` ids -> ``values`` (encoder outputs), ``keys`` (what attention scores
    against) and the decoder's initial ``state_h`` (and ``state_c``)."""
    layers = trained_layers(model)
    source = keras.Input((None,), dtype="int32", name="source")
    values, keys, initial = encode(config, layers, source)
    if keys is values:  # two outputs need two tensors (ONNX names each output once)
        keys = keras.layers.Identity(name="keys")(values)
    outputs = {"values": values, "keys": keys}
    outputs |= dict(zip(state_names(config), initial, strict=True))
    return keras.Model({"source": source}, outputs, name="encoder")


def state_names(config: Config) -> list[str]:
    return ["state_h", "state_c"][: state_count(config)]


def decoder_step_model(model: keras.Model, config: Config) -> keras.Model:
    """One decoder step: the previous ``token`` (batch, 1), the states, ``values``, ``keys``
    and ``source`` ids (for the mask) -> ``logits`` (batch, vocab), the new states
    (``next_state_h``, ...) and the ``attention`` weights over the source (batch, source
    length; zeros for ``none``)."""
    layers = trained_layers(model)
    decoder_units = 2 * config.units
    token = keras.Input((1,), dtype="int32", name="token")
    source = keras.Input((None,), dtype="int32", name="source")
    values = keras.Input((None, decoder_units), name="values")
    key_size = config.attention_units if config.attention in ADDITIVE else decoder_units
    keys = keras.Input((None, key_size), name="keys")
    states = [keras.Input((decoder_units,), name=name) for name in state_names(config)]
    source_mask = keras.ops.not_equal(source, 0)
    embedded = layers["target_embedding"](token)
    if config.attention == "bahdanau":
        cell = layers["decoder"].step
        context, weights = cell.attend(states[0], values, keys, source_mask)
        step_input = keras.ops.concatenate([embedded, keras.ops.expand_dims(context, 1)], -1)
        # The cell's recurrent part over one step: a fused node once exported.
        hidden, *new_states = keras.layers.RNN(cell.recurrent, return_state=True)(
            step_input, initial_state=states
        )
        hidden = keras.ops.concatenate([hidden, context], axis=-1)
    else:
        hidden, *new_states = layers["decoder"](embedded, initial_state=states)
        if config.attention == "none":
            weights = keras.ops.zeros_like(keras.ops.cast(source, "float32"))
        else:
            hidden, weights = luong_output(layers, hidden, values, keys, None, source_mask)
            weights = weights[:, 0]
        hidden = hidden[:, 0] if len(hidden.shape) == 3 else hidden
    outputs = {"logits": layers["logits"](hidden), "attention": weights}
    outputs |= {
        f"next_{n}": state for n, state in zip(state_names(config), new_states, strict=True)
    }
    inputs = {"token": token, "source": source, "values": values, "keys": keys}
    inputs |= dict(zip(state_names(config), states, strict=True))
    return keras.Model(inputs, outputs, name="decoder_step")
