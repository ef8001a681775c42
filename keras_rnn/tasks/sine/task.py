"""The sine task's contract (``keras_rnn.tasks.Task``); the package docstring describes
the task."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rnn import plots
from keras_rnn.epochs import shuffled_indices
from keras_rnn.errors import UserError
from keras_rnn.graphs import ExportGraph
from keras_rnn.layers import FLOAT32, configured_stack
from keras_rnn.runs import RunDir
from keras_rnn.tasks import no_callbacks, no_decoding_check, no_log_callbacks
from keras_rnn.tasks.sine import Config
from serving.runtime.series import read_csv_series, recursive_forecast


@dataclasses.dataclass
class Datasets:
    """The series, its split points and the tf.data pipelines built on it."""

    series: np.ndarray  # float32 (length,)
    val_start: int  # first target index of the validation split
    test_start: int  # first target index of the test split
    source: dict[str, Any]  # what config.json records about the data
    train: tf.data.Dataset
    val: tf.data.Dataset

    @property
    def assets(self) -> dict[str, bytes]:
        return {}  # no files beside the model

    @property
    def mean(self) -> float:
        return float(self.series[: self.val_start].mean())

    @property
    def std(self) -> float:
        return float(self.series[: self.val_start].std()) or 1.0


def noisy_sine(points: int, noise: float, seed: int) -> np.ndarray:
    """sin(x) on ``points`` evenly spaced x in [0, 36], plus uniform [0, noise) noise."""
    x = np.linspace(0.0, 36.0, points)
    return (np.sin(x) + np.random.default_rng(seed).uniform(0.0, noise, points)).astype(np.float32)


def make_datasets(config: Config) -> Datasets:
    """Load or generate the series, split it in time and build the tf.data pipelines."""
    if config.csv:
        series = read_csv_series(config.csv, config.column)
        source = {
            "kind": "csv",
            "file": Path(config.csv).name,
            "column": config.column,
        }
        source["file_sha256"] = hashlib.sha256(Path(config.csv).read_bytes()).hexdigest()
    else:
        series = noisy_sine(config.points, config.noise, config.data_seed)
        source = {"kind": "embedded noisy sine", "points": config.points, "noise": config.noise}
    source["series_sha256"] = hashlib.sha256(series.tobytes()).hexdigest()
    source["length"] = len(series)

    length = len(series)
    test_start = length - round(length * config.test_fraction)
    val_start = test_start - round(length * config.val_fraction)
    span = config.window + config.horizon
    split_sizes = {
        "training": val_start,
        "validation": test_start - val_start,
        "test": length - test_start,
    }
    minimum = {"training": span, "validation": config.horizon, "test": config.horizon}
    for split, have in split_sizes.items():
        if have < minimum[split]:
            raise UserError(
                f"series of {length} values is too short: its {split} part has {have} values but "
                f"--window {config.window} and --horizon {config.horizon} need {minimum[split]}"
            )
    window, horizon, size = config.window, config.horizon, config.batch_size
    train = window_batches(series, window, window, val_start, horizon, size, seed=config.seed)
    val = window_batches(series, window, val_start, test_start, horizon, size)
    return Datasets(
        series=series,
        val_start=val_start,
        test_start=test_start,
        source=source,
        train=train.prefetch(tf.data.AUTOTUNE),
        val=val.cache().prefetch(tf.data.AUTOTUNE),
    )


def window_batches(
    series: np.ndarray,
    window: int,
    start: int,
    stop: int,
    horizon: int,
    size: int,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of ``size`` examples whose targets ``series[t:t+horizon]`` lie in [start, stop),
    inputs the ``window`` values before t, as dicts: {window: (n, window, 1)} ->
    {next_value: (n, 1), next_values: (n, horizon)}. In order of t, or with ``seed`` shuffled
    in each epoch's order (``epochs.shuffled_indices``). Each batch is one gather, not one
    slice per example (see ``shuffled_indices``)."""
    values = tf.constant(series)
    offsets = tf.range(-window, horizon, dtype=tf.int64)  # the inputs, then the targets

    def batch(positions: tf.Tensor):
        spans = tf.gather(values, (start + positions)[:, tf.newaxis] + offsets)
        targets = spans[:, window:]
        inputs = spans[:, :window, tf.newaxis]
        return {"window": inputs}, {"next_value": targets[:, :1], "next_values": targets}

    count = stop - horizon + 1 - start
    if seed is None:
        return tf.data.Dataset.range(count).batch(size).map(batch)
    return shuffled_indices(count, seed, size).map(batch)


def windows(series: np.ndarray, window: int, start: int, stop: int) -> np.ndarray:
    """Numpy inputs ``(n, window, 1)`` for every target index t in [start, stop)."""
    return np.stack([series[t - window : t] for t in range(start, stop)])[..., None]


# The task contract's training hooks: this task adds no callbacks.
log_callbacks = no_log_callbacks
callbacks = no_callbacks
check_decoding = no_decoding_check  # one graph call gives each output


def build_model(config: Config, data: Datasets) -> keras.Model:
    """Normalise -> recurrent stack -> two heads: the next value and the next ``horizon``.

    Inputs and outputs are dicts keyed by name, as in every exported graph.
    The model takes and returns the series' own units (normalisation is inside the graph, with
    statistics of the training part), and accepts windows of any length.
    """
    inputs = keras.Input(shape=(None, 1), name="window")
    x = keras.layers.Normalization(
        mean=data.mean, variance=data.std**2, name="normalize", dtype=FLOAT32
    )(inputs)
    x = configured_stack(x, config)
    outputs = {}
    for name, size in (("next_value", 1), ("next_values", config.horizon)):
        scaled = keras.layers.Dense(size, name=f"{name}_normalized", dtype=FLOAT32)(x)
        outputs[name] = keras.layers.Rescaling(
            data.std, offset=data.mean, name=name, dtype=FLOAT32
        )(scaled)
    return keras.Model({"window": inputs}, outputs, name="sine_forecaster")


def export_graphs(model: keras.Model, config: Config, run: RunDir) -> list[ExportGraph]:
    """One graph: a window of raw values -> next_value and next_values."""
    normalize = model.get_layer("normalize")
    mean = float(keras.ops.convert_to_numpy(normalize.mean).reshape(-1)[0])
    std = float(np.sqrt(keras.ops.convert_to_numpy(normalize.variance).reshape(-1)[0]))

    def sample(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"window": (mean + std * rng.normal(size=(batch, length, 1))).astype(np.float32)}

    return [
        ExportGraph(
            name=model.name,
            model=model,
            inputs={"window": ((None, None, 1), "float32")},
            outputs=["next_value", "next_values"],
            sample=sample,
            lengths=(config.window, 2 * config.window + 3),
            runtime={"task": "sine", "window": config.window, "horizon": config.horizon},
        )
    ]


def compile_args(config: Config, data: Datasets) -> dict[str, Any]:
    """MSE on both heads, weighted by 1/variance so the loss is in normalised units."""
    weight = 1.0 / data.std**2
    return {
        "loss": {"next_value": "mse", "next_values": "mse"},
        "loss_weights": {"next_value": weight, "next_values": weight},
        "metrics": {"next_value": [keras.metrics.RootMeanSquaredError(name="rmse")]},
    }


def rmse(predicted: np.ndarray, target: np.ndarray, axis: int | None = None) -> np.ndarray:
    return np.sqrt(np.mean((np.asarray(predicted) - np.asarray(target)) ** 2, axis=axis))


def fit_linear_autoregression(series: np.ndarray, window: int, stop: int) -> np.ndarray:
    """Least-squares AR(window) with intercept on the training windows (targets before ``stop``)."""
    inputs = windows(series, window, window, stop)[..., 0]
    design = np.hstack([inputs, np.ones((len(inputs), 1))]).astype(np.float64)
    coefficients, *_ = np.linalg.lstsq(design, series[window:stop].astype(np.float64), rcond=None)
    return coefficients


def linear_predict(coefficients: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    return inputs[..., 0] @ coefficients[:-1] + coefficients[-1]


def evaluate(
    model: keras.Model, untrained: keras.Model, data: Datasets, config: Config, run: RunDir
) -> dict[str, Any]:
    """Test metrics of the model and both baselines; writes the forecast plots."""
    series, window, horizon = data.series, config.window, config.horizon
    test_inputs = windows(series, window, data.test_start, len(series))
    test_targets = series[data.test_start :]
    multi_inputs = test_inputs[: len(test_inputs) - horizon + 1]
    multi_targets = np.stack(
        [series[t : t + horizon] for t in range(data.test_start, len(series) - horizon + 1)]
    )

    def predict(net: keras.Model, inputs: np.ndarray, head: str) -> np.ndarray:
        # A direct call: the test split is small, and predict() would build a tf.data pipeline.
        return keras.ops.convert_to_numpy(net({"window": inputs}, training=False)[head])

    one_step = predict(model, test_inputs, "next_value")[:, 0]
    coefficients = fit_linear_autoregression(series, window, data.val_start)
    forecasts = {
        "direct": predict(model, multi_inputs, "next_values"),
        "recursive": recursive_forecast(
            lambda w: predict(model, w, "next_value"), multi_inputs, horizon
        ),
        "persistence": np.repeat(multi_inputs[:, -1], horizon, axis=1),
        "linear": recursive_forecast(
            lambda w: linear_predict(coefficients, w), multi_inputs, horizon
        ),
    }
    metrics = {
        "test_rmse": float(rmse(one_step, test_targets)),
        "persistence_rmse": float(rmse(test_inputs[:, -1, 0], test_targets)),
        "linear_rmse": float(rmse(linear_predict(coefficients, test_inputs), test_targets)),
        "multistep_rmse": {
            name: [float(v) for v in rmse(forecast, multi_targets, axis=0)]
            for name, forecast in forecasts.items()
        },
        "test_points": len(test_targets),
    }
    if not config.csv:
        metrics["noise_std"] = config.noise / math.sqrt(12)  # floor: no forecast beats the noise
    _plot_forecasts(
        run, series, data.test_start, one_step, predict(untrained, test_inputs, "next_value")[:, 0]
    )
    _plot_multistep(
        run, series, data.test_start, forecasts, predict(untrained, multi_inputs, "next_values")
    )
    return metrics


def _plot_forecasts(run: RunDir, series, test_start, trained, untrained) -> None:
    figure, axes = plots.plt.subplots(figsize=(9, 4))
    steps = np.arange(len(series))
    axes.plot(steps, series, color="0.6", lw=1, label="series")
    test_steps = steps[test_start:]
    axes.plot(test_steps, untrained, ":", color="tab:red", label="untrained model")
    axes.plot(test_steps, trained, color="tab:blue", label="trained model (one step ahead)")
    axes.axvline(test_start, color="k", lw=0.8, ls="--")
    axes.set_xlabel("step")
    axes.set_title("One-step forecasts on the test split")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, frameon=False)
    plots.save_figure(figure, run.plots / "forecast.png")


def _plot_multistep(run: RunDir, series, test_start, forecasts, untrained_direct) -> None:
    horizon = forecasts["direct"].shape[1]
    starts = range(0, forecasts["direct"].shape[0], horizon)
    figure, axes = plots.plt.subplots(figsize=(9, 4))
    steps = np.arange(len(series))
    axes.plot(steps[test_start:], series[test_start:], color="0.6", lw=1, label="series")
    for k, start in enumerate(starts):
        span = steps[test_start + start : test_start + start + horizon]
        labels = ("direct head", "recursive", "untrained direct") if k == 0 else (None,) * 3
        axes.plot(span, forecasts["direct"][start], color="tab:blue", label=labels[0])
        axes.plot(span, forecasts["recursive"][start], "--", color="tab:green", label=labels[1])
        axes.plot(span, untrained_direct[start], ":", color="tab:red", label=labels[2])
    axes.set_xlabel("step")
    axes.set_title(f"{horizon}-step forecasts from points of the test split")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3, frameon=False)
    plots.save_figure(figure, run.plots / "multistep.png")


def format_metrics(metrics: dict[str, Any], config: Config) -> str:
    """Markdown tables of the test metrics."""
    lines = [
        f"| one-step forecast ({metrics['test_points']} test points) | RMSE |",
        "|---|---:|",
        f"| {config.cell} model | {metrics['test_rmse']:.4f} |",
        f"| persistence (last value) | {metrics['persistence_rmse']:.4f} |",
        f"| linear AR({config.window}) | {metrics['linear_rmse']:.4f} |",
    ]
    if "noise_std" in metrics:
        lines.append(f"| noise floor (std of the noise) | {metrics['noise_std']:.4f} |")
    multi = metrics["multistep_rmse"]
    lines += ["", "| steps ahead | " + " | ".join(multi) + " |", "|---:|" + "---:|" * len(multi)]
    for step in range(len(multi["direct"])):
        lines.append(f"| {step + 1} | " + " | ".join(f"{multi[n][step]:.4f}" for n in multi) + " |")
    return "\n".join(lines)
