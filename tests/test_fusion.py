"""The fusion rewriter (export/fusion.py). Every variant of a Keras recurrent layer becomes one
fused ONNX node per direction with Keras's outputs, padded steps included, and so does every
layer option a user sets (no bias, GRU reset_after=False, the activations ONNX names, recurrent
dropout, a fixed batch size). Whatever the rewriter does not recognise stays tf2onnx's Loop,
and parity still holds."""

import keras
import numpy as np
import onnx
import onnxruntime
import pytest

from export import parity
from export.exporting import export_graph
from export.fusion import ONNX_OP
from export.fusion_terms import NotFused, Term, check_gates
from export.onnx import UNFUSED_OPS, op_counts, write_onnx
from keras_rnn.config import CELLS
from keras_rnn.graphs import ExportGraph
from keras_rnn.layers import rnn_layer
from serving.runtime.graph import open_session

UNITS = 4
VOCAB = 7
STATES = {"simple": ["h"], "lstm": ["h", "c"], "gru": ["h"]}
LAYERS = {"simple": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


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


@pytest.mark.slow
@pytest.mark.parametrize(("cell", "variant"), CASES, ids=[f"{c}-{v}" for c, v in CASES])
def test_layer_variant_is_one_fused_node_with_parity(cell, variant, tmp_path):
    masked, initial_state, options = VARIANTS[variant]
    layer = rnn_layer(cell, UNITS, name="rnn", **options)
    graph = layer_graph(variant.replace("-", "_"), layer, cell, masked, initial_state)
    entry, _ = export_graph(graph, tmp_path, parity.ATOL[cell])
    assert entry["ok"], entry
    counts = entry["onnx_op_counts"]
    assert entry["fused"] and counts[ONNX_OP[cell]] == 1 and not set(UNFUSED_OPS) & set(counts)


# Layer options, each a different loop body: name -> (cells, Keras arguments, what the report
# adds to each fused layer's line). recurrent_dropout switches LSTM and GRU to
# implementation=1, a MatMul per gate over kernel slices (SimpleRNN's body does not change).
OPTIONS = {
    "no-bias": (CELLS, {"use_bias": False}, "no bias"),
    "reset-before": (("gru",), {"reset_after": False}, "reset_after=False"),
    "reset-before-no-bias": (("gru",), {"reset_after": False, "use_bias": False}, "no bias"),
    "hard-sigmoid": (("lstm", "gru"), {"recurrent_activation": "hard_sigmoid"}, "HardSigmoid/"),
    "recurrent-dropout": (("lstm", "gru"), {"recurrent_dropout": 0.25}, ""),
    "recurrent-dropout-no-bias": (
        ("lstm", "gru"),
        {"recurrent_dropout": 0.25, "use_bias": False},
        "no bias",
    ),
    "recurrent-dropout-reset-before": (
        ("gru",),
        {"recurrent_dropout": 0.25, "reset_after": False},
        "reset_after=False",
    ),
}
# Three variants per option rather than all of VARIANTS (the loop's plumbing does not depend on
# the cell's options): between them forward and reverse, masked and not, zeros at padding,
# initial and returned states, all steps and the last one.
OPTION_VARIANTS = {  # name: (masked, initial_state, bidirectional, layer arguments)
    "bidirectional-masked": (True, False, True, {"return_sequences": True}),
    "state-masked-backwards-last": (
        True,
        True,
        False,
        {"return_state": True, "go_backwards": True},
    ),
    "state": (False, True, False, {"return_state": True, "return_sequences": True}),
}
OPTION_CASES = [
    (cell, option, variant)
    for option, (cells, _, _) in OPTIONS.items()
    for cell in cells
    for variant in OPTION_VARIANTS
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("cell", "option", "variant"), OPTION_CASES, ids=["-".join(case) for case in OPTION_CASES]
)
def test_layer_option_is_fused_with_parity(cell, option, variant, tmp_path):
    masked, initial_state, bidirectional, arguments = OPTION_VARIANTS[variant]
    _, options, note = OPTIONS[option]
    layer = LAYERS[cell](UNITS, name="rnn", **options, **arguments)
    if bidirectional:
        layer = keras.layers.Bidirectional(layer)
    graph = layer_graph(f"{option}_{variant}".replace("-", "_"), layer, cell, masked, initial_state)
    entry, _ = export_graph(graph, tmp_path, parity.ATOL[cell])
    assert entry["ok"], entry
    counts = entry["onnx_op_counts"]
    assert entry["fused"] and not set(UNFUSED_OPS) & set(counts), counts
    assert counts[ONNX_OP[cell]] == (2 if bidirectional else 1), counts
    # ours, saying what it read; tf2onnx fuses an unmasked LSTM itself (no line)
    lines = entry["recurrent_layers"]
    assert len(lines) == counts[ONNX_OP[cell]] or (cell == "lstm" and not masked), lines
    assert all(note in line and "Loop" not in line for line in lines), lines


# Every activation ONNX's recurrent ops name whose Keras counterpart is that exact function, in
# each place it can go: cell, recurrent_activation (LSTM, GRU), activation, ONNX's names.
ACTIVATION_TABLE = [
    ("simple", None, "relu", "Relu"),
    ("simple", None, "sigmoid", "Sigmoid"),
    ("simple", None, "elu", "Elu"),
    ("simple", None, "hard_sigmoid", "HardSigmoid"),
    ("simple", None, "softsign", "Softsign"),
    ("simple", None, "softplus", "Softplus"),
    ("simple", None, "leaky_relu", "LeakyRelu"),
    ("simple", None, "linear", "Affine"),
    ("lstm", "linear", "hard_sigmoid", "Affine/HardSigmoid/HardSigmoid"),
    ("lstm", "softsign", "elu", "Softsign/Elu/Elu"),
    ("lstm", "softplus", "leaky_relu", "Softplus/LeakyRelu/LeakyRelu"),
    ("gru", "relu", "softsign", "Relu/Softsign"),
    ("gru", "elu", "linear", "Elu/Affine"),
    ("gru", "leaky_relu", "hard_sigmoid", "LeakyRelu/HardSigmoid"),  # with reset_after=False
]
ACTIVATIONS = {  # case -> (cell, Keras arguments, ONNX's names)
    "-".join(filter(None, (cell, recurrent, activation))): (
        cell,
        {"activation": activation}
        | ({"recurrent_activation": recurrent} if recurrent else {})
        | ({"reset_after": False} if recurrent == "leaky_relu" else {}),
        onnx,
    )
    for cell, recurrent, activation, onnx in ACTIVATION_TABLE
}


@pytest.mark.slow
@pytest.mark.parametrize("case", ACTIVATIONS)
def test_activation_is_fused_as_its_onnx_activation_with_parity(case, tmp_path):
    cell, arguments, activations = ACTIVATIONS[case]
    layer = keras.layers.Bidirectional(LAYERS[cell](UNITS, return_sequences=True, **arguments))
    graph = layer_graph(case.replace("-", "_"), layer, cell)
    entry, _ = export_graph(graph, tmp_path, parity.ATOL[cell])
    assert entry["ok"], entry
    assert entry["fused"] and entry["onnx_op_counts"][ONNX_OP[cell]] == 2, entry
    lines = entry["recurrent_layers"]
    assert len(lines) == 2 and all(f"activations {activations})" in line for line in lines), lines


GAPPED = parity.MASK_BATCHES["gapped batch"]  # left-padded, gaps, fully masked, fully valid
FIXED = {  # case -> (cell, Keras arguments, batch size); 5 rows take a sampled row and GAPPED
    "simple": ("simple", {}, 5),
    "lstm-recurrent-dropout": ("lstm", {"recurrent_dropout": 0.25}, 5),
    "gru-reset-before-no-bias": ("gru", {"reset_after": False, "use_bias": False}, 5),
    "gru-stateful-hard-sigmoid": (
        "gru",
        {"stateful": True, "recurrent_activation": "hard_sigmoid"},
        5,
    ),
    # batch 1: TensorFlow squeezes LSTM's h @ R to a vector before adding it
    "lstm-batch-1": ("lstm", {}, 1),
}


def fixed_batch_graph(name: str, cell: str, arguments: dict, batch: int) -> ExportGraph:
    """ids with a fixed batch size -> Embedding (mask_zero) -> a Bidirectional layer (all steps)
    and a go_backwards layer (last output): shapes are static, so tf2onnx's rewrite_gemm turns
    each loop body's MatMul and bias into Gemm before the fusion rewriter runs."""
    keras.utils.set_random_seed(11)
    ids = keras.Input(batch_shape=(batch, None), dtype="int32", name="ids")
    embedded = keras.layers.Embedding(VOCAB, 3, mask_zero=True)(ids)
    both = keras.layers.Bidirectional(LAYERS[cell](UNITS, return_sequences=True, **arguments))
    last = LAYERS[cell](UNITS, go_backwards=True, **arguments)
    model = keras.Model({"ids": ids}, {"both": both(embedded), "last": last(embedded)}, name=name)
    specs = {"ids": ((batch, None), "int32")}
    return ExportGraph(name, model, specs, ["both", "last"], None, (5, 9), masked_input="ids")


@pytest.mark.parametrize("case", FIXED)
def test_fixed_batch_size_is_fused_with_parity(case, tmp_path):
    cell, arguments, batch = FIXED[case]
    graph = fixed_batch_graph(case.replace("-", "_"), cell, arguments, batch)
    path = tmp_path / "fixed.onnx"
    report = write_onnx(graph, path)
    assert len(report) == 3 and not any("Loop" in line for line in report), report
    counts = op_counts(path)
    assert counts[ONNX_OP[cell]] == 3 and not set(UNFUSED_OPS) & set(counts), counts
    session = open_session(path)
    rng = np.random.default_rng(0)
    for length in graph.lengths:
        sampled = {"ids": token_ids(batch, length, rng, padded=True)}
        feeds = [sampled]
        if batch == len(GAPPED) + 1:
            feeds.append(parity.with_mask_patterns(graph, sampled, GAPPED, rng))
        for feed in feeds:
            for layer in graph.model.layers:  # stateful: start from the exported (zero) state
                if getattr(layer, "stateful", False):
                    layer.reset_states()
            expected = graph.model(feed)
            actual = dict(zip(["both", "last"], session.run(["both", "last"], feed), strict=True))
            for name, value in actual.items():
                np.testing.assert_allclose(
                    value, keras.ops.convert_to_numpy(expected[name]), atol=parity.ATOL[cell]
                )


def test_fixed_batch_loop_bodies_hold_gemm_for_the_rewriter(tmp_path):
    """The premise of the test above: tf2onnx alone leaves Gemm nodes in the loop bodies."""
    graph = fixed_batch_graph("alone", "gru", {}, 5)
    write_onnx(graph, tmp_path / "alone.onnx", fuse={})
    loops = [n for n in onnx.load(str(tmp_path / "alone.onnx")).graph.node if n.op_type == "Loop"]
    bodies = [attribute.g for loop in loops for attribute in loop.attribute]
    assert len(loops) == 3 and all("Gemm" in {n.op_type for n in body.node} for body in bodies)


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
    "simple-selu": (  # SELU is no activation of ONNX's RNN (ScaledTanh is another function)
        "simple",
        lambda: keras.layers.SimpleRNN(UNITS, activation="selu", return_sequences=True),
        "(as simple: a gate's input has a Selu: neither an activation ONNX takes",
    ),
    "gru-relu6": (  # relu6 is no ONNX activation (hard_sigmoid's relu6(x + 3) / 6 is)
        "gru",
        lambda: keras.layers.GRU(UNITS, recurrent_activation="relu6", return_sequences=True),
        "(as gru: a gate's input has a Relu6",
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


def test_a_rewriter_bug_leaves_the_loop_with_the_error_as_its_reason(tmp_path, monkeypatch):
    import export.fusion

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(export.fusion, "recognise_body", broken)
    graph = layer_graph("broken", rnn_layer("gru", UNITS, return_sequences=True), "gru")
    entry, _ = export_graph(graph, tmp_path, parity.ATOL["gru"])
    assert entry["ok"] and entry["onnx_op_counts"]["Loop"] == 1, entry
    (layer,) = entry["recurrent_layers"]
    assert "left as Loop (the rewriter failed: RuntimeError: boom)" in layer, layer


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


def _terms(kind: str, columns: list[tuple], row: int | None = None) -> list[Term]:
    return [Term(kind, ((selection, *span),), row) for selection, *span in columns]


def test_gate_sums_must_be_the_onnx_gates():
    """An LSTM read per gate (implementation=1: kernel Split in 4, recurrent slices, bias Split
    in 4) passes; the same with two gates' recurrent columns swapped, a bias missing from one
    gate, or GRU's recurrent bias outside the reset product does not."""
    units = 4
    kernel = [("split", gate, 4) for gate in range(4)]
    recurrent = [("slice", gate * units, (gate + 1) * units) for gate in range(4)]
    gates = [
        [
            *_terms("x", [kernel[gate]]),
            *_terms("h", [recurrent[gate]]),
            *_terms("bias", [kernel[gate]]),
        ]
        for gate in range(4)
    ]
    check_gates(gates, "lstm", units, bias_rows=1)
    swapped = [list(gate) for gate in gates]
    swapped[0][1], swapped[1][1] = gates[1][1], gates[0][1]
    missing_bias = [gate[:2] if index == 3 else gate for index, gate in enumerate(gates)]
    for wrong in (swapped, missing_bias):
        with pytest.raises(NotFused, match="does not sum"):
            check_gates(wrong, "lstm", units, bias_rows=1)

    thirds = [("split", gate, 3) for gate in range(3)]
    gru = [
        [*_terms("x", [thirds[gate]]), *_terms("bias", [thirds[gate]], 0)]
        + (
            [Term("reset", inner=(*_terms("h", [thirds[2]]), *_terms("bias", [thirds[2]], 1)))]
            if gate == 2
            else [*_terms("h", [thirds[gate]]), *_terms("bias", [thirds[gate]], 1)]
        )
        for gate in range(3)
    ]
    check_gates(gru, "gru", units, bias_rows=2)
    outside = [
        *gru[:2],
        [*gru[2][:2], Term("reset", inner=gru[2][2].inner[:1]), gru[2][2].inner[1]],
    ]
    with pytest.raises(NotFused, match="gate 2 does not sum"):
        check_gates(outside, "gru", units, bias_rows=2)
