"""cuDNN: the recurrent layers every task builds by default meet Keras 3's conditions for the
cuDNN kernels, and config.json records whether cuDNN was there and used."""

import importlib
import json
from types import SimpleNamespace

import keras
import pytest

from keras_rnn.layers import cudnn_blockers, cudnn_report, recurrent_layers
from keras_rnn.tasks.addition import Config as AdditionConfig
from keras_rnn.tasks.addition import task as addition
from keras_rnn.tasks.charlm import Config as CharLMConfig
from keras_rnn.tasks.charlm import model as charlm
from keras_rnn.tasks.sine import Config as SineConfig
from keras_rnn.tasks.sine import task as sine
from keras_rnn.tasks.tagging import Config as TaggingConfig
from keras_rnn.tasks.tagging import task as tagging
from keras_rnn.tasks.translate import ATTENTIONS
from keras_rnn.tasks.translate import Config as TranslateConfig
from keras_rnn.tasks.translate import model as translate

# Keras's TensorFlow backend module (its package exports a function of the same name).
keras_tf_rnn = importlib.import_module("keras.src.backend.tensorflow.rnn")


def keras_accepts(layer: keras.layers.RNN) -> bool:
    """Keras 3.15.1's own test (its TensorFlow backend's, less the GPU), plus the two the
    layer makes before calling it: no recurrent dropout, use_cudnn not False."""
    cell = layer.cell
    arguments = dict(
        activation=cell.activation,
        recurrent_activation=cell.recurrent_activation,
        unroll=layer.unroll,
        use_bias=cell.use_bias,
    )
    if isinstance(layer, keras.layers.GRU):
        supported = keras_tf_rnn._do_gru_arguments_support_cudnn(
            reset_after=cell.reset_after, **arguments
        )
    else:
        supported = keras_tf_rnn._do_lstm_arguments_support_cudnn(**arguments)
    return supported and not cell.recurrent_dropout and layer.use_cudnn is not False


def default_models(**overrides) -> dict[str, keras.Model]:
    """Each task's training model from its default config (with ``overrides``), built from
    small stand-ins for the data its builder reads; translate with every attention."""
    tags = SimpleNamespace(vocab=SimpleNamespace(size=30), tag_names=["NOUN", "VERB"])
    models = {
        "sine": sine.build_model(SineConfig(**overrides), SimpleNamespace(mean=0.0, std=1.0)),
        "addition": addition.build_model(AdditionConfig(**overrides), None),
        "decimal addition": addition.build_model(AdditionConfig(digits=3, **overrides), None),
        "charlm": charlm.build_model(
            CharLMConfig(**overrides), SimpleNamespace(vocab=SimpleNamespace(size=90))
        ),
        "tagging": tagging.build_model(TaggingConfig(**overrides), tags),
    }
    for attention in ATTENTIONS:
        config = TranslateConfig(attention=attention, **overrides)
        models[f"translate {attention}"] = translate.build_model(config, 40, 50)
    return models


@pytest.mark.parametrize("cell", [None, "lstm", "gru"])
def test_default_layers_meet_keras_cudnn_conditions(cell):
    """Every LSTM and GRU layer of every task's default model (and with --cell lstm or gru)
    passes Keras's own cuDNN test; the layers that cannot (a SimpleRNN, addition's default
    cell, and Bahdanau's decoder, a cell inside keras.layers.RNN) are the known ones, and
    cudnn_blockers agrees with Keras on each."""
    models = default_models(**({"cell": cell} if cell else {}))
    without_kernel = {"translate bahdanau"} | (
        {"addition", "decimal addition"} if not cell else set()
    )
    for name, model in models.items():
        layers = recurrent_layers(model)
        assert layers, name
        for layer in layers:
            kernel = isinstance(layer, keras.layers.LSTM | keras.layers.GRU)
            if kernel:
                assert keras_accepts(layer), (name, layer.name)
            else:
                assert name in without_kernel, (name, layer.name, type(layer).__name__)
            assert (cudnn_blockers(layer) == []) == kernel, (name, layer.name)


@pytest.mark.parametrize(
    ("layer", "reason"),
    [
        (keras.layers.LSTM(4, activation="relu"), "activation is not tanh"),
        (keras.layers.GRU(4, recurrent_activation="hard_sigmoid"), "recurrent activation"),
        (keras.layers.LSTM(4, recurrent_dropout=0.1), "recurrent dropout"),
        (keras.layers.GRU(4, unroll=True), "unroll"),
        (keras.layers.LSTM(4, use_bias=False), "no bias"),
        (keras.layers.GRU(4, reset_after=False), "reset_after=False"),
        (keras.layers.LSTM(4, use_cudnn=False), "use_cudnn=False"),
        (keras.layers.SimpleRNN(4), "Keras has no cuDNN kernel for SimpleRNN"),
        (keras.layers.RNN(keras.layers.GRUCell(4)), "no cuDNN kernel for GRUCell"),
    ],
)
def test_each_condition_is_named(layer, reason):
    blockers = cudnn_blockers(layer)
    assert len(blockers) == 1 and reason in blockers[0]
    if isinstance(layer, keras.layers.LSTM | keras.layers.GRU):
        assert not keras_accepts(layer)  # Keras agrees that it is not eligible


def test_the_report_lists_both_directions_and_nested_layers():
    config = TranslateConfig(attention="bahdanau", units=4, embedding_size=4)
    model = translate.build_model(config, 10, 12)
    report = cudnn_report(model, gpu=False)
    assert report["available"] is False and report["used"] == []
    directions = sorted(name.split("_")[0] for name in report["eligible"])
    assert directions == ["backward", "forward"]  # the encoder's Bidirectional GRU
    [reason] = report["not_eligible"].values()  # the decoder's RNN over BahdanauCell
    assert reason == "Keras has no cuDNN kernel for BahdanauCell"
    on_gpu = cudnn_report(model, gpu=True)
    assert on_gpu["used"] == on_gpu["eligible"] == report["eligible"]


def test_config_json_records_cudnn(trained_run):
    saved = json.loads((trained_run("lstm") / "config.json").read_text())
    cudnn = saved["environment"]["cudnn"]
    gpus = bool(saved["environment"]["gpus"])
    assert cudnn["available"] is gpus
    assert cudnn["eligible"] == ["rnn_0"] and cudnn["not_eligible"] == {}
    assert cudnn["used"] == (["rnn_0"] if gpus else [])
