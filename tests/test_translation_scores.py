"""serving.runtime.translate over scripted functions (numpy only): the score is the mean
log-probability of the ids written, an output that is no calendar date is flagged, and the
decoder's state goes from step to step by the graphs' names."""

import math

import numpy as np
import pytest

from serving.runtime.translate import Translator, as_json, decoding_steps, is_iso_date
from serving.runtime.vocab import END, START

TARGET = ("<pad>", "<unknown>", "<start>", "<end>", *"0123456789-")
LEAD = 3.0  # the scripted id's logit; every other id's is 0


def scripted(output: str, iso_dates: bool = True) -> Translator:
    """A translator that writes ``output`` whatever the source, then the end id."""
    script = [TARGET.index(character) for character in output] + [END]

    def step(previous: np.ndarray, states: list[np.ndarray]):
        (position,) = states
        logits = np.zeros((len(previous), len(TARGET)), np.float32)
        logits[np.arange(len(previous)), [script[min(p, len(script) - 1)] for p in position]] = LEAD
        return logits, [position + 1], np.ones((len(previous), 1), np.float32)

    return Translator(
        encode=lambda source: [np.zeros(len(source), int)],
        step=step,
        tokenize=list,
        detokenize="".join,
        source_ids=lambda tokens: (np.full(len(tokens), 4, np.int32), []),
        target_tokens=lambda ids: [TARGET[i] for i in ids],
        start_id=START,
        end_id=END,
        max_length=20,
        iso_dates=iso_dates,
    )


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2021-02-28", True),
        ("2024-02-29", True),
        ("2021-02-31", False),
        ("1999-00-07", False),
        ("2023-02-29", False),
        ("0000-01-01", False),
        ("20210228", False),  # fromisoformat takes it: not what the task writes
        ("2021-W01-1", False),
        ("２０２１-02-28", False),
        ("", False),
    ],
)
def test_only_calendar_dates_written_yyyy_mm_dd_are_valid(text, valid):
    assert is_iso_date(text) is valid


@pytest.mark.parametrize("output", ["2021-02-31", "1999-00-07", "2021-02-28"])
def test_a_translation_says_whether_it_is_a_date_and_how_sure_the_decoder_was(output):
    """Greedy and beam (length penalty 1) score the 11 ids (end included) alike: each had
    probability e^3 / (e^3 + 14)."""
    expected = LEAD - math.log(math.exp(LEAD) + len(TARGET) - 1)
    translator = scripted(output)
    for (translation,) in (translator.greedy(["x"]), translator.beam(["x"], 2, 1.0)):
        assert translation.text == output
        assert translation.score == pytest.approx(expected, abs=1e-6)
        assert translation.valid_date is is_iso_date(output)
    (row,) = as_json(["x"], translator.greedy(["x"]))["translations"]
    assert row["valid_date"] is is_iso_date(output) and row["score"] == pytest.approx(expected)
    assert (
        "valid_date"
        not in as_json(["x"], scripted(output, iso_dates=False).greedy(["x"]))["translations"][0]
    )


def test_the_decoder_state_goes_by_the_graphs_names():
    """The first state is the encoder's outputs and the source ids; each step is fed the
    state by name and replaces the recurrent states with its ``next_`` outputs only."""
    source = np.array([[5, 6, 0]], np.int32)
    values, keys = np.ones((1, 3, 2)), np.full((1, 3, 2), 2.0)
    fed = []

    def encoder(source: np.ndarray) -> dict[str, np.ndarray]:
        start = {"state_h": np.zeros((len(source), 2)), "state_c": np.ones((len(source), 2))}
        return start | {"values": values, "keys": keys}

    def decoder_step(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        fed.append(inputs)
        return {
            "logits": np.zeros((1, 4)),
            "attention": np.zeros((1, 3)),
            "next_state_h": inputs["state_h"] + 1,
            "next_state_c": inputs["state_c"] * 3,
        }

    encode, step = decoding_steps(encoder, decoder_step, ["state_h", "state_c"])
    state = encode(source)
    for token in (START, 7):
        _, state, _ = step(np.array([[token]], np.int32), state)
    assert sorted(fed[1]) == ["keys", "source", "state_c", "state_h", "token", "values"]
    assert fed[1]["token"].tolist() == [[7]] and fed[1]["state_h"].tolist() == [[1.0, 1.0]]
    assert state["state_h"].tolist() == [[2.0, 2.0]] and state["state_c"].tolist() == [[9.0, 9.0]]
    assert state["values"] is values and state["keys"] is keys and state["source"] is source
