"""Every recurrent stack we can build exports fused and passes parity: {SimpleRNN, LSTM, GRU} x
{1, 2 layers} x {uni, bidirectional} x {unmasked, masked}, tiny random models. Masked cases are
sampled right-padded, and parity adds left-padded, gapped, fully masked and fully valid rows."""

import itertools
from dataclasses import replace

import keras
import numpy as np
import pytest

from export import parity
from export.exporting import export_graph, format_report
from export.fusion import ONNX_OP
from export.onnx import UNFUSED_OPS
from keras_rnn.config import CELLS
from keras_rnn.graphs import ExportGraph
from keras_rnn.layers import recurrent_stack

FEATURES = 3


def stack_graph(cell: str, layers: int, bidirectional: bool, masked: bool) -> ExportGraph:
    """Sequence in -> recurrent stack (all steps) -> Dense scores, under a stable name."""
    keras.utils.set_random_seed(7)
    name = f"{cell}_{layers}l_{'bi' if bidirectional else 'uni'}_{'masked' if masked else 'dense'}"
    inputs = keras.Input((None, FEATURES), name="sequence")
    x = keras.layers.Masking(0.0)(inputs) if masked else inputs
    x = recurrent_stack(
        x, cell, 4, layers=layers, bidirectional=bidirectional, return_sequences=True
    )
    scores = keras.layers.Dense(2, name="scores")(x)
    model = keras.Model({"sequence": inputs}, {"scores": scores}, name=name)

    def sample(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        values = rng.normal(size=(batch, length, FEATURES)).astype(np.float32)
        if masked:  # right padding: every row keeps 1..length steps, the rest are zeros
            lengths = rng.integers(1, length + 1, size=batch)
            values[np.arange(length)[None, :] >= lengths[:, None]] = 0.0
        return {"sequence": values}

    return ExportGraph(
        name=name,
        model=model,
        inputs={"sequence": ((None, None, FEATURES), "float32")},
        outputs=["scores"],
        sample=sample,
        lengths=(5, 9),
        masked_input="sequence" if masked else None,
    )


MATRIX = list(itertools.product(CELLS, (1, 2), (False, True), (False, True)))


@pytest.mark.parametrize(
    ("cell", "layers", "bidirectional", "masked"),
    MATRIX,
    ids=["-".join(map(str, case)) for case in MATRIX],
)
def test_stack_exports_with_parity(cell, layers, bidirectional, masked, tmp_path):
    graph = stack_graph(cell, layers, bidirectional, masked)
    entry, manifest = export_graph(graph, tmp_path, parity.ATOL[cell])
    assert entry["ok"], entry
    # batch 1 and 5 x lengths 5 and 9; masked: a right-padded and a gapped batch per length
    assert len(entry["shapes_tested"]) == (8 if masked else 4)
    assert len(entry["masks_tested"]) == (3 if masked else 0)
    assert manifest["onnx"] == f"onnx/{graph.name}.onnx"
    counts = entry["onnx_op_counts"]
    assert entry["fused"] and not set(UNFUSED_OPS) & set(counts), counts
    # One fused node per direction; tf2onnx itself fuses an unmasked LSTM and merges the two
    # directions of a Bidirectional one into a single direction="bidirectional" node.
    per_layer = 2 if bidirectional and not (cell == "lstm" and not masked) else 1
    assert counts[ONNX_OP[cell]] == layers * per_layer, counts


def test_masked_samples_are_right_padded():
    graph = stack_graph("gru", 1, False, True)
    values = graph.sample(6, 9, np.random.default_rng(0))["sequence"]
    valid = np.any(values != 0, axis=-1)
    assert valid[:, 0].all()  # at least one step
    assert all(np.array_equal(row, np.sort(row)[::-1]) for row in valid)  # no gap before padding
    assert not valid.all()  # some padding happened


def test_parity_adds_a_right_padded_and_a_gapped_batch_of_edge_rows():
    graph = stack_graph("gru", 1, False, True)
    batches = parity.samples(graph, np.random.default_rng(0))[len(parity.BATCH_SIZES) * 2 :]
    assert len(batches) == len(parity.MASK_BATCHES) * len(graph.lengths)
    for values, patterns in zip(
        (batch["sequence"] for batch in batches),
        (patterns for patterns in parity.MASK_BATCHES.values() for _ in graph.lengths),
        strict=True,
    ):
        valid = np.any(values != 0, axis=-1)
        for row, masked in enumerate(patterns.values(), start=1):
            assert np.array_equal(valid[row], ~masked(values.shape[1]))
        right_padded = [np.array_equal(row, np.sort(row)[::-1]) for row in valid]
        assert all(right_padded) == ("left-padded" not in patterns)  # the If takes each branch


def test_a_savedmodel_only_graph_gets_no_onnx_file_and_says_so(tmp_path):
    graph = replace(stack_graph("gru", 1, False, False), formats=("savedmodel",))
    entry, manifest = export_graph(graph, tmp_path, parity.ATOL["gru"])
    assert entry["ok"], entry
    assert not (tmp_path / "onnx").exists()
    assert (tmp_path / "savedmodel" / graph.name / "1" / "saved_model.pb").is_file()
    assert manifest["formats"] == entry["formats"] == ["savedmodel"] and "onnx" not in manifest
    assert entry["max_abs_diff_onnx"] is None and entry["onnx_op_counts"] is None
    assert entry["max_abs_diff_savedmodel"] <= parity.ATOL["gru"]
    row = format_report({"ok": True, "graphs": [entry]}).splitlines()[-1]
    assert row.startswith(f"| {graph.name} | ") and "| - |" in row


def test_a_graph_tolerance_replaces_the_cells(tmp_path):
    graph = replace(stack_graph("lstm", 1, False, False), atol=-1.0)  # no difference can pass
    entry, _ = export_graph(graph, tmp_path, parity.ATOL["lstm"])
    assert entry["atol"] == -1.0 and not entry["ok"]
    assert entry["formats"] == ["savedmodel", "onnx"]


def test_unknown_formats_are_refused():
    with pytest.raises(ValueError, match="formats must be some of"):
        replace(stack_graph("gru", 1, False, False), formats=("tflite",))
