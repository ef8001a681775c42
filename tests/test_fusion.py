"""The fusion rewriter (export/fusion.py). Every variant of a Keras recurrent layer becomes one
fused ONNX node per direction with Keras's outputs, padded steps included. Whatever the rewriter
does not recognise stays tf2onnx's Loop, and parity still holds."""

import keras
import numpy as np
import onnxruntime
import pytest

from export import parity
from export.exporting import export_graph
from export.fusion import ONNX_OP
from export.onnx import UNFUSED_OPS, write_onnx
from keras_rnn.config import CELLS
from keras_rnn.graphs import ExportGraph
from keras_rnn.layers import rnn_layer
from serving.runtime.graph import open_session

UNITS = 4
VOCAB = 7
STATES = {"simple": ["h"], "lstm": ["h", "c"], "gru": ["h"]}


def token_ids(batch: int, length: int, rng: np.random.Generator, padded: bool) -> np.ndarray:
    """Ids 1..VOCAB-1; with ``padded``, each row keeps 0..length of them and then 0s."""
    ids = rng.integers(1, VOCAB, size=(batch, length))
    if padded:
        lengths = rng.integers(0, length + 1, size=batch)
        ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
    return ids.astype(np.int32)


def layer_graph(
    name: str,
    layer: keras.layers.Layer,
    cell: str,
    masked: bool = True,
    initial_state: bool = False,
) -> ExportGraph:
    """ids -> Embedding (mask_zero when ``masked``) -> ``layer``; with ``initial_state`` the
    states are inputs and ``layer`` must return them too."""
    keras.utils.set_random_seed(11)
    ids = keras.Input((None,), dtype="int32", name="ids")
    embedding = keras.layers.Embedding(VOCAB, 3, mask_zero=masked)
    inputs, specs, kwargs = {"ids": ids}, {"ids": ((None, None), "int32")}, {}
    if initial_state:
        states = {
            f"initial_{state}": keras.Input((UNITS,), name=f"initial_{state}")
            for state in STATES[cell]
        }
        inputs |= states
        specs |= {name: ((None, UNITS), "float32") for name in states}
        kwargs["initial_state"] = list(states.values())
        if masked:  # Keras drops the mask when initial_state is given (Keras 3.15)
            kwargs["mask"] = embedding.compute_mask(ids)
    result = layer(embedding(ids), **kwargs)
    if initial_state:
        outputs = dict(zip(["outputs", *(f"final_{s}" for s in STATES[cell])], result, strict=True))
    else:
        outputs = {"outputs": result}

    def sample(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        feed = {"ids": token_ids(batch, length, rng, padded=masked)}
        for state in specs.keys() - {"ids"}:
            feed[state] = rng.normal(size=(batch, UNITS)).astype(np.float32)
        return feed

    model = keras.Model(inputs, outputs, name=name)
    return ExportGraph(
        name, model, specs, list(outputs), sample, (5, 9), masked_input="ids" if masked else None
    )


VARIANTS = {  # name: (masked, initial_state, rnn_layer options)
    "backwards": (False, False, {"go_backwards": True, "return_sequences": True}),
    "backwards-masked": (True, False, {"go_backwards": True, "return_sequences": True}),
    "last-output-masked": (True, False, {}),
    "state": (False, True, {"return_state": True, "return_sequences": True}),
    "state-masked": (True, True, {"return_state": True, "return_sequences": True}),
    "state-masked-backwards-last": (True, True, {"return_state": True, "go_backwards": True}),
}
CASES = [(cell, variant) for cell in CELLS for variant in VARIANTS]


@pytest.mark.parametrize(("cell", "variant"), CASES, ids=[f"{c}-{v}" for c, v in CASES])
def test_layer_variant_is_one_fused_node_with_parity(cell, variant, tmp_path):
    masked, initial_state, options = VARIANTS[variant]
    layer = rnn_layer(cell, UNITS, name="rnn", **options)
    graph = layer_graph(variant.replace("-", "_"), layer, cell, masked, initial_state)
    entry, _ = export_graph(graph, tmp_path, parity.ATOL[cell])
    assert entry["ok"], entry
    counts = entry["onnx_op_counts"]
    assert entry["fused"] and counts[ONNX_OP[cell]] == 1 and not set(UNFUSED_OPS) & set(counts)


@pytest.mark.parametrize("cell", CELLS)
def test_padded_steps_hold_the_values_keras_defines(cell, tmp_path):
    """Forward: the last valid output repeats. go_backwards: zeros while Keras runs through
    the padding first. Bidirectional (zero_output_for_mask): zeros in both halves."""
    ids = np.array([[1, 2, 3, 4, 5], [3, 1, 0, 0, 0], [0, 0, 0, 0, 0]], np.int32)
    lengths = (ids != 0).sum(axis=1)
    layers = {
        "forward": rnn_layer(cell, UNITS, return_sequences=True),
        "backwards": rnn_layer(cell, UNITS, return_sequences=True, go_backwards=True),
        "bidirectional": keras.layers.Bidirectional(rnn_layer(cell, UNITS, return_sequences=True)),
    }
    for name, layer in layers.items():
        graph = layer_graph(name, layer, cell)
        write_onnx(graph, tmp_path / f"{name}.onnx")
        (outputs,) = open_session(tmp_path / f"{name}.onnx").run(None, {"ids": ids})
        expected = keras.ops.convert_to_numpy(graph.model({"ids": ids})["outputs"])
        np.testing.assert_allclose(outputs, expected, atol=parity.ATOL[cell])
        for row, length in enumerate(lengths):
            padded = outputs[row, length:] if name != "backwards" else outputs[row, : 5 - length]
            if name == "forward" and length > 0:
                np.testing.assert_array_equal(
                    padded, np.broadcast_to(outputs[row, length - 1], padded.shape)
                )
            else:
                assert not padded.any(), (name, row)
        assert np.abs(outputs[0]).min() > 0  # a full row has no zero output


FALLBACKS = {  # a layer the rewriter leaves alone, and the reason it reports
    "gru-reset-before": (
        "gru",
        lambda: keras.layers.GRU(UNITS, reset_after=False, return_sequences=True),
        "is not a Keras cell of",
    ),
    "lstm-hard-sigmoid": (
        "lstm",
        lambda: keras.layers.LSTM(
            UNITS, recurrent_activation="hard_sigmoid", return_sequences=True, use_cudnn=False
        ),
        "is not a Keras cell of",
    ),
    "simple-32-units": (
        "simple",
        lambda: rnn_layer("simple", 32, return_sequences=True),
        "32 units: above 16, the Loop measured faster",
    ),
}


@pytest.mark.parametrize("case", FALLBACKS)
def test_unrecognised_layer_stays_a_loop_with_parity(case, tmp_path):
    cell, make_layer, reason = FALLBACKS[case]
    graph = layer_graph(case.replace("-", "_"), make_layer(), cell)
    entry, _ = export_graph(graph, tmp_path, parity.ATOL[cell])
    assert entry["ok"], entry
    assert not entry["fused"] and entry["onnx_op_counts"]["Loop"] == 1
    assert ONNX_OP[cell] not in entry["onnx_op_counts"]
    (layer,) = entry["recurrent_layers"]
    assert "left as Loop" in layer and reason in layer, layer


def test_report_names_each_fused_layer(tmp_path):
    layer = keras.layers.Bidirectional(rnn_layer("gru", UNITS, return_sequences=True))
    report = write_onnx(layer_graph("bi", layer, "gru"), tmp_path / "bi.onnx")
    assert sorted(line.split(": ", 1)[1] for line in report) == [
        "GRU (forward, masked (zeros at padding))",
        "GRU (reverse, masked (zeros at padding))",
    ]


@pytest.mark.parametrize("cell", CELLS)
def test_masked_bidirectional_export_loads_without_onnxruntime_warnings(cell, tmp_path, capfd):
    """What the mask handling adds must not make onnxruntime warn at every session start (it
    did when a branch of the If read a tensor that onnxruntime's optimiser removes)."""
    layer = keras.layers.Bidirectional(rnn_layer(cell, UNITS, return_sequences=True))
    graph = layer_graph(f"{cell}_bidirectional", layer, cell)
    path = tmp_path / "model.onnx"
    write_onnx(graph, path, {cell: None})
    capfd.readouterr()
    onnx_session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_session.run(None, graph.sample(5, 9, np.random.default_rng(0)))
    assert "onnxruntime" not in capfd.readouterr().err
