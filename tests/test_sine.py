"""Sine task (--task sine): the series, CSV input, windows, baselines, the model, a tiny run's
records, and the shared battery on tiny LSTM and GRU runs."""

import csv
import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_rnn.config import config_from_dict
from keras_rnn.errors import UserError
from keras_rnn.tasks.sine import task as sine
from keras_rnn.tasks.sine.task import noisy_sine
from serving.runtime.series import read_csv_series, recursive_forecast
from tests.battery import TaskBattery, TaskCase, refusal
from tests.conftest import tiny_sine

WINDOW = noisy_sine(400, 0.2, seed=0)[330:340]  # test values the tiny runs never trained on


def keras_forecast(run_dir: Path) -> dict:
    """What serving.predict --json prints for ``--window`` WINDOW, computed by Keras."""
    model = keras.models.load_model(run_dir / "model.keras")

    def call(window: np.ndarray) -> dict[str, np.ndarray]:
        return {k: keras.ops.convert_to_numpy(v) for k, v in model({"window": window}).items()}

    inputs = WINDOW.reshape(1, -1, 1)
    outputs = call(inputs)
    horizon = outputs["next_values"].shape[1]
    recursive = recursive_forecast(lambda w: call(w)["next_value"], inputs, horizon)
    return {
        "next_value": float(outputs["next_value"][0, 0]),
        "next_values": [float(v) for v in outputs["next_values"][0]],
        "recursive": [float(v) for v in recursive[0]],
    }


SINE = TaskCase(
    task="sine",
    training=tuple(tiny_sine("lstm")),
    graphs=("sine_forecaster",),
    metrics=frozenset(
        {"test_rmse", "persistence_rmse", "linear_rmse", "multistep_rmse", "test_points"}
        | {"noise_std"}
    ),
    query=("--window=" + ",".join(f"{v:.9g}" for v in WINDOW),),
    answer=keras_forecast,
    plots=("forecast", "multistep"),
    bad_training=(
        refusal(["--noise", "-1"], "--noise must be >= 0, got -1"),
        refusal(["--column", "value"], "--column needs --csv"),
        refusal(["--window", "0"], "--window must be positive"),
        refusal(["--csv", "."], ". is a folder, not a CSV file"),
    ),
    bad_predict=(
        refusal(["--window", "0.1,abc"], "--window item 2 ('abc') is not a number"),
        refusal(["--window", "0.1,nan"], "--window item 2 is nan"),
        refusal(["--window", "1", "--column", "x"], "--column needs --csv"),
        refusal(["--csv", "missing.csv"], "CSV file not found: missing.csv"),
        refusal(["--csv", "."], ". is a folder, not a CSV file"),
        refusal([], "a sine run needs exactly one of --window and --csv"),
        refusal(["--window", "1", "--csv", "x.csv"], "exactly one of --window and --csv"),
        refusal(["--window", "-0.5,0.1"], "expected one argument", "needs --window=-0.5,0.1"),
    ),
)


class TestSineBattery(TaskBattery):
    case = SINE


class TestSineGRUBattery(TaskBattery):
    """The GRU run: its files, export and served forecasts (the refusals are the LSTM's)."""

    case = dataclasses.replace(
        SINE, training=tuple(tiny_sine("gru")), bad_training=(), bad_predict=()
    )


def config(**values):
    return config_from_dict(sine.Config, values)


def write_csv(tmp_path, text, name="series.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_noisy_sine_is_the_course_series():
    series = noisy_sine(400, 0.2, seed=0)
    noise = series - np.sin(np.linspace(0, 36, 400))
    assert series.shape == (400,) and series.dtype == np.float32
    assert noise.min() >= -1e-6 and noise.max() < 0.2 + 1e-6
    assert abs(noise.mean() - 0.1) < 0.01 and abs(noise.std() - 0.2 / np.sqrt(12)) < 0.005
    np.testing.assert_array_equal(series, noisy_sine(400, 0.2, seed=0))
    assert not np.array_equal(series, noisy_sine(400, 0.2, seed=1))


def test_csv_column_is_read(tmp_path):
    path = write_csv(tmp_path, "t,value\n0,1.5\n1,-2\n\n2,3e-1\n")
    np.testing.assert_allclose(read_csv_series(path, "value"), [1.5, -2.0, 0.3])
    only = write_csv(tmp_path, "value\n1\n2\n", "one.csv")
    np.testing.assert_allclose(read_csv_series(only, None), [1.0, 2.0])


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("", None, "is empty"),
        ("a,b\n1,2\n", None, "has columns a, b: pick one with --column"),
        ("a,b\n1,2\n", "c", "has no column 'c' (columns: a, b)"),
        ("a,b\n1,2\n3\n", "b", "series.csv:3: row has 1 fields, no value for 'b'"),
        ("a\n1\nfoo\n", None, "series.csv:3: 'foo' is not a number"),
        ("a\n1\n2\nnan\n", None, "series.csv:4: a is nan; NaN and infinity are not allowed"),
        ("a\n1\n-inf\n", None, "series.csv:3: a is -inf"),
        ('a\n"1\n', None, "is not valid CSV"),
    ],
)
def test_bad_csv_is_a_user_error(tmp_path, text, column, message):
    path = write_csv(tmp_path, text)
    with pytest.raises(UserError) as error:
        read_csv_series(path, column)
    assert message in str(error.value)


def test_missing_and_binary_csv(tmp_path):
    with pytest.raises(UserError, match="CSV file not found"):
        read_csv_series(str(tmp_path / "nope.csv"), None)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"a\n\xff\xfe\n")
    with pytest.raises(UserError, match="is not UTF-8"):
        read_csv_series(str(binary), None)


def test_too_short_series_names_the_split(tmp_path):
    def series_csv(length):
        return write_csv(tmp_path, "a\n" + "\n".join(map(str, range(length))) + "\n")

    with pytest.raises(UserError, match="series of 25 values is too short: its training part"):
        sine.make_datasets(config(csv=series_csv(25)))
    with pytest.raises(UserError, match="its validation part has 3 values but --window 2"):
        sine.make_datasets(config(csv=series_csv(30), window=2, horizon=5))
    assert len(sine.make_datasets(config(csv=series_csv(30), window=2, horizon=3)).series) == 30


def test_window_batches_match_numpy_windows():
    series = np.arange(20, dtype=np.float32)
    batches = list(sine.window_batches(series, 3, 5, 10, 2, size=3).as_numpy_iterator())
    assert [len(inputs["window"]) for inputs, _ in batches] == [3, 1]
    examples = [
        (inputs["window"][row], {name: value[row] for name, value in targets.items()})
        for inputs, targets in batches
        for row in range(len(inputs["window"]))
    ]
    assert len(examples) == 4  # first targets 5..8: the last target (t+1) must be < 10
    for offset, (inputs, targets) in enumerate(examples):
        t = 5 + offset
        np.testing.assert_array_equal(inputs[:, 0], series[t - 3 : t])
        np.testing.assert_array_equal(targets["next_values"], series[t : t + 2])
        np.testing.assert_array_equal(targets["next_value"], series[t : t + 1])
    shuffled = sine.window_batches(series, 3, 5, 10, 2, size=3, seed=0).as_numpy_iterator()
    targets = np.concatenate([targets["next_value"][:, 0] for _, targets in shuffled])
    assert sorted(targets) == [5, 6, 7, 8] and list(targets) != [5, 6, 7, 8]
    np.testing.assert_array_equal(
        sine.windows(series, 3, 5, 9)[:, :, 0],
        [s for s, _ in [(series[t - 3 : t], None) for t in range(5, 9)]],
    )


def test_splits_are_in_time_order():
    data = sine.make_datasets(config())
    assert (data.val_start, data.test_start) == (280, 320)
    first_train_inputs = next(iter(data.train.unbatch().as_numpy_iterator()))[0]["window"]
    assert first_train_inputs.shape == (10, 1)
    last_val_targets = list(data.val.unbatch().as_numpy_iterator())[-1][1]["next_values"]
    np.testing.assert_array_equal(last_val_targets, data.series[310:320])  # ends at the test split


def test_linear_autoregression_is_exact_on_a_noiseless_sine():
    series = noisy_sine(400, 0.0, seed=0)
    coefficients = sine.fit_linear_autoregression(series, 10, 300)
    inputs = sine.windows(series, 10, 300, 400)
    np.testing.assert_allclose(sine.linear_predict(coefficients, inputs), series[300:], atol=1e-4)


def test_recursive_forecast_feeds_predictions_back():
    ramp = np.arange(10, dtype=np.float32)[None, :, None]
    forecast = recursive_forecast(lambda w: w[:, -1, 0] + (w[:, -1, 0] - w[:, -2, 0]), ramp, 4)
    np.testing.assert_array_equal(forecast, [[10, 11, 12, 13]])


def test_model_takes_and_returns_raw_units_at_any_length():
    cfg = config(units=4, horizon=3)
    data = sine.make_datasets(cfg)
    model = sine.build_model(cfg, data)
    outputs = model.predict({"window": np.zeros((2, 7, 1), np.float32)}, verbose=0)
    assert outputs["next_value"].shape == (2, 1) and outputs["next_values"].shape == (2, 3)
    dense = model.get_layer("next_value_normalized")
    dense.set_weights([np.zeros_like(w) for w in dense.get_weights()])
    constant = model.predict({"window": np.zeros((1, 5, 1), np.float32)}, verbose=0)["next_value"]
    np.testing.assert_allclose(constant, [[data.mean]], atol=1e-6)  # zero output -> the mean
    weights = sine.compile_args(cfg, data)["loss_weights"]
    assert weights["next_value"] == pytest.approx(1 / data.std**2)


def test_tiny_run_records_its_series_history_and_baselines(trained_run):
    run_dir = trained_run("gru")
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["config"]["cell"] == "gru" and saved["config"]["units"] == 4
    assert saved["data"]["length"] == 400 and len(saved["data"]["series_sha256"]) == 64
    assert saved["environment"]["keras"] == keras.__version__

    with (run_dir / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert {"next_value_rmse", "val_next_value_rmse"} <= set(rows[0])

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["multistep_rmse"]) == {"direct", "recursive", "persistence", "linear"}
    assert all(len(v) == 10 for v in metrics["multistep_rmse"].values())
    assert metrics["persistence_rmse"] == pytest.approx(0.1048, abs=5e-4)  # the course's 0.105
    assert metrics["linear_rmse"] < metrics["persistence_rmse"]
