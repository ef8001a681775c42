"""Config dataclasses drive the CLI: flags, defaults, validation."""

import argparse
import dataclasses

import pytest

from keras_rnn.config import SineConfig, TrainConfig, add_config_flags, config_from_dict
from keras_rnn.errors import UserError


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
        ({"colour": "red"}, "unknown config keys for SineConfig: colour"),
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
