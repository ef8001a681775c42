"""Sine task helpers: the series, CSV input, windows, baselines, the model."""

import numpy as np
import pytest

from keras_rnn.config import config_from_dict
from keras_rnn.errors import UserError
from keras_rnn.tasks.sine import task as sine
from keras_rnn.tasks.sine.task import noisy_sine
from serving.runtime.series import read_csv_series, recursive_forecast
from tests.conftest import foreign_classes


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


def test_window_dataset_matches_numpy_windows():
    series = np.arange(20, dtype=np.float32)
    examples = list(sine.window_dataset(series, 3, 5, 10, 2).as_numpy_iterator())
    assert len(examples) == 4  # first targets 5..8: the last target (t+1) must be < 10
    for offset, (inputs, targets) in enumerate(examples):
        inputs = inputs["window"]
        t = 5 + offset
        np.testing.assert_array_equal(inputs[:, 0], series[t - 3 : t])
        np.testing.assert_array_equal(targets["next_values"], series[t : t + 2])
        np.testing.assert_array_equal(targets["next_value"], series[t : t + 1])
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


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_model_names_keras_classes_only(cell, trained_run):
    """Plain ``keras.models.load_model`` loads it: no class of ours in the file."""
    assert foreign_classes(trained_run(cell) / "model.keras") == []
