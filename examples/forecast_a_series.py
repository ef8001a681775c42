"""Forecast a series with an LSTM, then forecast it again through onnxruntime.

A walkthrough to read top to bottom: it writes a CSV series, builds the sine task's LSTM
forecaster on it, fits it on tf.data, compares its forecast with a linear autoregression,
exports it to ONNX and forecasts again with onnxruntime, without TensorFlow.

    python examples/forecast_a_series.py [OUT_DIR] [--quick]

OUT_DIR (default: a temporary folder, removed at the end) receives ``series.csv`` and
``export/``, which ``examples/serve_and_query.py OUT_DIR`` serves. ``--quick`` trains 10
epochs instead of 100 (what the tests run). Run it from the repository root after
``pip install .`` (or with ``PYTHONPATH=.``); it takes about 30 seconds on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import keras
import numpy as np

from export.model import export_model
from keras_rnn.tasks.sine import Config
from keras_rnn.tasks.sine import task as sine
from serving.runtime import forecast, load_graph

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("out_dir", nargs="?", type=Path, help="where series.csv and export/ go")
parser.add_argument("--quick", action="store_true", help="10 epochs instead of 100")
args = parser.parse_args()
temporary = None if args.out_dir else tempfile.TemporaryDirectory()
out_dir = args.out_dir or Path(temporary.name)
out_dir.mkdir(parents=True, exist_ok=True)

# ## A series in a CSV file
#
# Any numeric column of a CSV file with a header row will do. Ours is hourly-looking data: a
# daily cycle of 24 steps, a slower weekly one of 168 steps and noise, 1,500 values.
rng = np.random.default_rng(0)
hours = np.arange(1500)
series = (
    20 + 5 * np.sin(2 * np.pi * hours / 24) + 2 * np.sin(2 * np.pi * hours / 168)
) + rng.normal(0.0, 0.5, len(hours))
csv_path = out_dir / "series.csv"
csv_path.write_text("temperature\n" + "".join(f"{value:.4f}\n" for value in series))
print(f"series: {len(series)} values written to {csv_path}")

# ## The data: windows on tf.data
#
# The sine task's `Config` holds every setting the `--task sine` CLI has, with its defaults;
# `csv=` replaces the embedded noisy sine with our file. The model sees 24 past values and
# predicts the next one, and the next 12 at once. `make_datasets` reads the file, splits it
# in time (train, then validation, then the last 20% for testing) and builds tf.data
# pipelines of {window} -> {next_value, next_values} batches.
config = Config(
    csv=str(csv_path),
    column="temperature",
    window=24,
    horizon=12,
    units=32,
    learning_rate=3e-3,
    epochs=10 if args.quick else 100,
)
keras.utils.set_random_seed(config.seed)
data = sine.make_datasets(config)
print(f"split: train before {data.val_start}, validation before {data.test_start}, then test")

# ## The model
#
# `build_model` is what `python -m keras_rnn.train --task sine` trains: the window is
# normalised inside the graph (with the training part's mean and std), goes through an
# LSTM, and two Dense heads give the next value and the next `horizon` values in the
# series' own units. `compile_args` weighs both heads' MSE so the loss is in normalised units.
model = sine.build_model(config, data)
model.compile(
    optimizer=keras.optimizers.Adam(config.learning_rate), **sine.compile_args(config, data)
)
print(f"model: {model.name}, {model.count_params():,} parameters")

# ## Training
#
# `fit` takes the tf.data pipelines as they are: they batch and shuffle themselves (hence
# `shuffle=False`). Early stopping keeps the weights of the best validation epoch.
stop = keras.callbacks.EarlyStopping(patience=15, restore_best_weights=True)
history = model.fit(
    data.train,
    validation_data=data.val,
    epochs=config.epochs,
    callbacks=[stop],
    shuffle=False,
    verbose=0,
)
print(f"trained {len(history.history['loss'])} epochs")

# ## The forecast against the baselines
#
# On the test part, one step ahead. Two baselines say whether the LSTM learned anything:
# persistence (tomorrow is today) and a least-squares linear autoregression on the same 24
# past values, fitted on the training part: the task's own `linear_rmse`. The noise (std 0.5)
# is a floor no forecast beats, and a sum of sines is nearly linear to predict, so expect the
# LSTM close to the linear model (a little better at the default size) and far ahead of
# persistence.
test_inputs = sine.windows(data.series, config.window, data.test_start, len(data.series))
test_targets = data.series[data.test_start :]
keras_forecast = keras.ops.convert_to_numpy(model({"window": test_inputs})["next_value"])[:, 0]
coefficients = sine.fit_linear_autoregression(data.series, config.window, data.val_start)
scores = {
    "LSTM (Keras)": sine.rmse(keras_forecast, test_targets),
    f"linear AR({config.window})": sine.rmse(
        sine.linear_predict(coefficients, test_inputs), test_targets
    ),
    "persistence": sine.rmse(test_inputs[:, -1, 0], test_targets),
}
print(f"test RMSE, one step ahead, {len(test_targets)} points (noise std 0.5):")
for name, score in scores.items():
    print(f"  {name:<20} {score:.4f}")

# ## Export to ONNX
#
# `export_model` is `python -m export.model` for a model in memory. It writes a SavedModel
# (for TF Serving), an ONNX graph whose LSTM is one fused ONNX `LSTM` node, the Triton
# folder, `manifest.json`, and `parity.json`: the ONNX graph's answers against Keras's on
# generated windows. Nothing is written unless parity holds.
report = export_model(model, out_dir / "export", force=True)
(graph_report,) = report["graphs"]
print(
    f"exported to {out_dir / 'export'}: parity ok {report['ok']}, "
    f"fused LSTM nodes {graph_report['onnx_op_counts'].get('LSTM', 0)}"
)

# ## The forecast again, through onnxruntime
#
# `serving.runtime` needs numpy and onnxruntime only: this part runs where TensorFlow is not
# installed. `load_graph` opens the ONNX graph and checks each call's inputs against the
# manifest; calling it gives the outputs by name.
graph = load_graph(out_dir / "export")
onnx_forecast = graph(window=test_inputs)["next_value"][:, 0]
print(f"  {'LSTM (onnxruntime)':<20} {sine.rmse(onnx_forecast, test_targets):.4f}")
largest = np.abs(keras_forecast - onnx_forecast).max()
print(f"largest |Keras - onnxruntime| over the test windows: {largest:.2e}")

# `forecast` is what `python -m serving.predict` prints for a window: the next value, the
# direct multi-step head and the recursive forecast (each prediction fed back as input).
result = forecast(graph, data.series[-config.window :])
print(
    f"after the series: next {result['next_value']:.3f}; direct "
    + " ".join(f"{value:.2f}" for value in result["next_values"][:6])
    + " ..."
)

if temporary:
    temporary.cleanup()
