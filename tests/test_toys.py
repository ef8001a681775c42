"""The course toys (keras_rnn/toys.py) train in seconds and give the exact outputs.
Seeds 0-3 all pass; the tests use the default seed 0."""

import pytest

from keras_rnn import toys


def test_vocabulary_keeps_reserved_tokens_first_and_characters_once():
    vocab = toys.vocabulary("hello", "ohlol", reserved=(toys.PAD,))
    assert vocab.tokens == ("_", "h", "e", "l", "o")
    assert vocab.text(vocab.ids("hole")) == "hole"


@pytest.mark.slow
def test_study_hard_becomes_lie_flat_n_to_n():
    assert len(toys.vocabulary("我要好好学习", "我要乖乖躺平").tokens) == 8
    assert toys.n_to_n("我要好好学习", "我要乖乖躺平") == "我要乖乖躺平"


@pytest.mark.slow
def test_hello_becomes_ohlol_with_two_stacked_layers():
    assert toys.n_to_n("hello", "ohlol", layers=2) == "ohlol"


def test_n_to_n_needs_equal_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        toys.n_to_n("hello", "hi")


@pytest.mark.slow
def test_encoder_decoder_answers_every_antonym_from_its_own_outputs():
    translate = toys.encoder_decoder()
    assert {word: translate(word) for word, _ in toys.ANTONYMS} == dict(toys.ANTONYMS)


def test_help_is_printed_without_training(capsys):
    with pytest.raises(SystemExit) as exit_info:
        toys.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m keras_rnn.toys") and "->" not in out


def test_unknown_arguments_are_one_line(cli_error):
    cli_error(toys.main, ["--cell", "gru"], "unrecognized arguments: --cell gru")
