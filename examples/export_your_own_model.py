"""Export your own model: a masked bidirectional LSTM, fused for onnxruntime.

You built a Keras model of your own, with nothing of this project in it, and want to serve it
without TensorFlow. This walkthrough builds one (a classifier of variable-length id sequences,
left-padded as `keras.utils.pad_sequences` pads by default), trains it briefly, exports it with
`export.model.export_model`, and then checks three things a reader can see printed: the
ONNX graph gives Keras's answers (padded rows included), its LSTMs are fused ONNX `LSTM` nodes
rather than tf2onnx's step-by-step `Loop`, and what that is worth at batch 1 against Keras's
own `model.export(format="onnx")`.

Run it with the project installed (`pip install .`, or the `.venv` that `make demo` makes):
`python examples/export_your_own_model.py` (under 2 minutes on 2 CPU cores). `--quick` trains
and times less (tests/test_examples_export.py runs it so). It writes into
`export_your_own_model/` in the current folder.
"""

import argparse
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import onnxruntime

from export.model import export_model
from export.onnx import op_counts, recurrent_ops
from serving.runtime import load_graph
from serving.runtime.graph import PaddingWarning

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--quick", action="store_true", help="a tiny run, for the tests")
QUICK = parser.parse_args().quick
EXAMPLES, EPOCHS, CALLS = (256, 1, 50) if QUICK else (4000, 4, 300)
VOCABULARY, LONGEST = 20, 24  # ids 1..19 (0 is padding); sequences of 2..24 ids
OUT = Path("export_your_own_model")
keras.utils.set_random_seed(0)

# ## The data
# Each example is a sequence of ids of its own length; its label says whether its first id is
# larger than its last. Answering needs both ends of the sequence, which a bidirectional LSTM
# reads from either side. `pad_sequences` pads at the front ("pre") unless told otherwise.
rng = np.random.default_rng(0)
sequences = [rng.integers(1, VOCABULARY, rng.integers(2, LONGEST + 1)) for _ in range(EXAMPLES)]
labels = np.array([int(sequence[0] > sequence[-1]) for sequence in sequences])
ids = keras.utils.pad_sequences(sequences, maxlen=LONGEST, dtype="int32")  # left-padded

# ## The model
# A Functional model from `keras.layers`: `mask_zero=True` makes the embedding mask the
# padding, and the mask travels to the LSTM, which skips padded steps. The input's length is
# left free (`None`), so the exported graph takes sequences of any length.
inputs = keras.Input((None,), dtype="int32", name="ids")
embedded = keras.layers.Embedding(VOCABULARY, 16, mask_zero=True, name="embed")(inputs)
encoded = keras.layers.Bidirectional(keras.layers.LSTM(32), name="encoder")(embedded)
outputs = keras.layers.Dense(1, activation="sigmoid", name="first_is_larger")(encoded)
model = keras.Model(inputs, outputs, name="my_classifier")
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
history = model.fit(ids, labels, batch_size=32, epochs=EPOCHS, validation_split=0.2, verbose=0)
print(f"validation accuracy after {EPOCHS} epoch(s): {history.history['val_accuracy'][-1]:.3f}")

# ## The export
# `export_model` writes the folder that `python -m export` writes for a run of this project:
# a SavedModel for TF Serving, the ONNX graph (and a Triton folder), manifest.json and
# parity.json. Its rewrite turns each LSTM into one ONNX `LSTM` node, whatever the padding
# (docs/design.md, "Fusion and masks"), and it checks parity itself before writing anything:
# `report["ok"]` is false and nothing is written when onnxruntime and Keras disagree.
# `force=True` lets a second run replace the folder (only an export that export_model wrote).
report = export_model(model, OUT / "fused", force=True)
assert report["ok"], report
(fused_report,) = report["graphs"]

# ## Parity, seen from outside
# `load_graph` opens the export with onnxruntime alone (no TensorFlow on the serving side). We
# compare its answers with Keras's on the last 200 rows, most of them left-padded. The runtime
# warns about rows that are not right-padded: they take a slower exact path, which is the
# point here, so the warning is silenced.
graph = load_graph(OUT / "fused", threads=1)
expected = keras.ops.convert_to_numpy(model(ids[-200:]))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", PaddingWarning)
    (actual,) = graph(ids=ids[-200:]).values()
left_padded = (ids[-200:, 0] == 0).nonzero()[0]
difference = np.abs(actual - expected)
print(
    f"parity: max abs diff Keras vs onnxruntime {difference.max():.2e} over "
    f"{len(actual)} rows, {difference[left_padded].max():.2e} over the "
    f"{len(left_padded)} left-padded ones"
)

# ## What the graph is made of
# tf2onnx on its own turns a Keras 3 recurrent layer into a `Loop` that runs the cell's ops
# once per step. Keras's own ONNX export (which calls tf2onnx) shows it; ours has fused nodes.
keras_onnx = OUT / "keras_export.onnx"
model.export(str(keras_onnx), format="onnx", verbose=False)
keras_counts = op_counts(keras_onnx)
print(f"fused export, recurrent ops: {recurrent_ops(fused_report['onnx_op_counts'])}")
print(f"Keras's own export, recurrent ops: {recurrent_ops(keras_counts)}")


# ## Speed at batch 1
# A served request is often one sequence: nothing to pad. Both graphs run in onnxruntime with
# one thread, on the same 24 ids; we take the median of many calls, each timed alone.
def median_milliseconds(session: onnxruntime.InferenceSession, row: np.ndarray) -> float:
    """The median time of ``CALLS`` runs of ``session`` on ``row``, in milliseconds."""
    feed = {session.get_inputs()[0].name: row}
    session.run(None, feed)  # the first call allocates: not timed
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


options = onnxruntime.SessionOptions()
options.intra_op_num_threads = 1
keras_session = onnxruntime.InferenceSession(
    str(keras_onnx), options, providers=["CPUExecutionProvider"]
)
row = rng.integers(1, VOCABULARY, (1, LONGEST)).astype("int32")
fused_ms = median_milliseconds(graph.session, row)
keras_ms = median_milliseconds(keras_session, row)
print(
    f"batch 1, median of {CALLS} calls: fused {fused_ms:.3f} ms, Keras's export "
    f"{keras_ms:.3f} ms ({keras_ms / fused_ms:.1f}x)"
)
