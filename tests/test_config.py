"""Config dataclasses drive the CLI: flags, defaults, validation."""

import argparse
import dataclasses

import pytest

from keras_rnn import train
from keras_rnn.config import TrainConfig, add_config_flags, config_from_dict
from keras_rnn.errors import UserError
from keras_rnn.tasks.addition import Config as AdditionConfig
from keras_rnn.tasks.charlm import Config as CharLMConfig
from keras_rnn.tasks.sine import Config as SineConfig
from keras_rnn.tasks.translate import Config as TranslateConfig


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_config_flags(parser, SineConfig)
    return vars(parser.parse_args(list(argv)))


def test_every_field_but_task_has_a_flag_with_its_default_in_the_help():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, SineConfig)
    help_text = parser.format_help()
    for field in dataclasses.fields(SineConfig):
        if field.name != "task":
            assert f"--{field.name.replace('_', '-')}" in help_text
    assert "(default: 32)" in help_text and "(default: lstm)" in help_text


def test_only_typed_flags_are_parsed_with_their_types():
    assert parse() == {}
    assert parse("--units", "8", "--learning-rate", "0.5", "--bidirectional", "--csv", "x.csv") == {
        "units": 8,
        "learning_rate": 0.5,
        "bidirectional": True,
        "csv": "x.csv",
    }
    assert parse("--no-bidirectional") == {"bidirectional": False}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"units": 0}, "--units must be positive"),
        ({"layers": -1}, "--layers must be positive"),
        ({"batch_size": 0}, "--batch-size must be positive"),
        ({"learning_rate": float("nan")}, "--learning-rate must be a positive number"),
        ({"dropout": 1.0}, "--dropout must be in [0, 1)"),
        ({"clipnorm": -1.0}, "--clipnorm must be >= 0"),
        ({"cell": "rnn"}, "--cell: 'rnn' is not one of simple, lstm, gru"),
        ({"window": 0}, "--window must be positive"),
        ({"noise": -0.1}, "--noise must be >= 0"),
        ({"test_fraction": 1.5}, "--test-fraction must be in (0, 1)"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "must leave data for training"),
        ({"column": "y"}, "--column needs --csv"),
        ({"colour": "red"}, "unknown config keys for task sine: colour"),
    ],
)
def test_invalid_values_are_named(values, message):
    with pytest.raises(UserError) as error:
        config_from_dict(SineConfig, values)
    assert message in str(error.value)


def test_defaults_are_valid_and_round_trip():
    config = config_from_dict(SineConfig, {})
    assert config.task == "sine" and isinstance(config, TrainConfig)
    assert config_from_dict(SineConfig, config.to_dict()) == config


@pytest.mark.parametrize(
    ("config_class", "values", "message"),
    [
        (SineConfig, {"seed": -1}, "--seed must be in [0, 2**32), got -1"),
        (SineConfig, {"seed": 2**32}, "--seed must be in [0, 2**32)"),
        (SineConfig, {"data_seed": -3}, "--data-seed must be in [0, 2**32), got -3"),
        (AdditionConfig, {"digits": 2, "train_pairs": -5}, "--train-pairs must be positive"),
        (CharLMConfig, {"sample_every": -1}, "--sample-every must be >= 0"),
    ],
)
def test_negative_counts_and_seeds_are_refused(config_class, values, message):
    with pytest.raises(UserError) as error:
        config_from_dict(config_class, values)
    assert message in str(error.value)


def test_a_config_built_in_code_is_validated():
    with pytest.raises(UserError, match="--units must be positive"):
        SineConfig(units=0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--merge-mode", "sum"], "--merge-mode does not apply without --bidirectional"),
        (
            ["--task", "tagging", "--no-bidirectional", "--merge-mode", "concat"],
            "--merge-mode does not apply without --bidirectional",
        ),
        (["--dropout", "0.2"], "--dropout does not apply to one layer"),
        (["--csv", "series.csv", "--noise", "0.1"], "--noise does not apply with --csv"),
        (["--csv", "series.csv", "--data-seed", "0"], "--data-seed does not apply with --csv"),
        (["--task", "addition", "--digits", "3", "--bits", "8"], "--bits does not apply with"),
        (["--task", "addition", "--train-pairs", "10"], "--train-pairs does not apply without"),
        (
            ["--task", "charlm", "--sample-every", "0", "--sample-prefix", "class "],
            "--sample-prefix does not apply with --sample-every 0",
        ),
    ],
)
def test_flags_that_do_not_apply_are_refused(argv, message, tmp_path, cli_error):
    cli_error(train.main, [*argv, "--run-dir", tmp_path / "run"], message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("task", "takes_directions"),
    [
        ("sine", True),
        ("addition", True),
        ("tagging", True),
        ("charlm", False),
        ("translate", False),
    ],
)
def test_help_lists_only_the_model_flags_the_task_takes(task, takes_directions, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--task", task, "--help"])
    help_text = capsys.readouterr().out
    for name in ("--cell", "--units", "--layers", "--dropout"):
        assert name in help_text
    for name in ("--bidirectional", "--merge-mode"):
        assert (name in help_text) == takes_directions


@pytest.mark.parametrize(
    "argv",
    [
        ["--task", "charlm", "--bidirectional"],
        ["--task", "translate", "--no-bidirectional"],
        ["--task", "translate", "--merge-mode", "sum"],
    ],
)
def test_a_model_flag_the_task_does_not_take_is_named(argv, tmp_path, cli_error):
    task, given = argv[1], " ".join(argv[2:])
    cli_error(
        train.main,
        [*argv, "--run-dir", tmp_path / "run"],
        f"unrecognized arguments: {given} (not flags of --task {task}: --task {task} --help",
    )
    assert not (tmp_path / "run").exists()


def test_translation_offers_only_the_cells_it_builds(tmp_path, cli_error):
    cli_error(train.main, ["--task", "translate", "--cell", "simple"], "invalid choice: 'simple'")
    with pytest.raises(UserError, match="--cell: 'simple' is not one of lstm, gru"):
        TranslateConfig(cell="simple")


@pytest.mark.parametrize(
    ("config_class", "direction"), [(CharLMConfig, False), (TranslateConfig, True)]
)
def test_a_config_json_from_before_directions_were_opt_in_is_read(config_class, direction):
    """Every config.json held bidirectional and merge_mode; a task with a fixed direction
    drops them when they hold its values."""
    old = {**config_class().to_dict(), "bidirectional": direction, "merge_mode": "concat"}
    config = config_from_dict(config_class, old)
    assert config == config_class() and config.bidirectional is direction
    assert not {"bidirectional", "merge_mode"} & config.to_dict().keys()


@pytest.mark.parametrize(
    ("config_class", "key", "value"),
    [
        (CharLMConfig, "bidirectional", True),
        (TranslateConfig, "bidirectional", False),
        (TranslateConfig, "merge_mode", "sum"),
    ],
)
def test_a_saved_direction_the_task_cannot_have_is_refused(config_class, key, value):
    with pytest.raises(UserError) as error:
        config_from_dict(config_class, {key: value})
    assert f"config key {key} is {value!r}, but task {config_class.task} always has" in str(
        error.value
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["--layers", "2", "--dropout", "0.2"],
        ["--bidirectional", "--merge-mode", "sum"],
        ["--task", "charlm", "--dropout", "0.5"],  # before the output layer too
        ["--task", "addition", "--digits", "3", "--train-pairs", "5000"],
        ["--task", "charlm", "--sample-every", "2", "--sample-length", "50"],
    ],
)
def test_flags_that_apply_are_accepted(argv):
    config, _ = train.parse_args(argv)
    assert config.task in {"sine", "charlm", "addition"}
