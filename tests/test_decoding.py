"""serving.runtime.decoding: beam search against brute-force enumeration on a toy step
function, greedy as width 1, sampling one id at a time, and the settings' checks (CPU, numpy
only)."""

import itertools
import re

import numpy as np
import pytest

from serving.errors import UserError
from serving.runtime.decoding import (
    Beam,
    Sampler,
    Sampling,
    beam_search,
    concatenate_rows,
    generate,
    greedy,
    log_softmax,
    rows_of,
    stream_ids,
)

VOCAB = 4
TABLE = np.random.default_rng(3).normal(0.0, 2.0, size=(64, VOCAB))


def toy_step(ids: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits that depend on the whole history: the state numbers it (base VOCAB + 1)."""
    (history,) = states
    history = history * (VOCAB + 1) + ids + 1
    return TABLE[history[:, 0] % len(TABLE)], [history]


START = [2]
STATES = [np.zeros((1, 1), np.int64)]


def score(ids: tuple[int, ...]) -> float:
    """The log-probability of ``ids`` after START, one step at a time."""
    logits, states = toy_step(np.array([START]), STATES)
    total = 0.0
    for token in ids:
        total += log_softmax(logits)[0, token]
        logits, states = toy_step(np.array([[token]]), states)
    return total


def ranked(sequences) -> list[tuple[list[int], float]]:
    return sorted(((list(s), score(s)) for s in sequences), key=lambda pair: -pair[1])


def check(found, expected) -> None:
    assert [ids for ids, _ in found] == [ids for ids, _ in expected]
    np.testing.assert_allclose([s for _, s in found], [s for _, s in expected], atol=1e-9)


def test_a_full_width_beam_ranks_every_sequence_as_enumeration_does():
    length = 3
    expected = ranked(itertools.product(range(VOCAB), repeat=length))
    found = beam_search(toy_step, STATES, START, Beam(length, VOCAB**length), excluded=())
    check(found, expected)


def test_a_beam_ends_at_the_end_id():
    length, end = 3, 1
    sequences = [
        s
        for n in range(1, length + 1)
        for s in itertools.product(range(VOCAB), repeat=n)
        if end not in s[:-1] and (n == length or s[-1] == end)
    ]
    expected = ranked(sequences)
    found = beam_search(toy_step, STATES, START, Beam(length, len(sequences), end), excluded=())
    check(found, expected)
    narrow = beam_search(toy_step, STATES, START, Beam(length, 2, end), excluded=())
    assert [end] in [ids for ids, _ in narrow]  # ended at the first step, among the 2 best
    check(narrow, ranked(tuple(ids) for ids, _ in narrow))


def test_width_one_is_greedy():
    greedy = generate(toy_step, STATES, START, Sampling(length=5, temperature=0), excluded=())
    [(ids, log_probability)] = beam_search(toy_step, STATES, START, Beam(5, 1), excluded=())
    assert ids == greedy
    assert log_probability == pytest.approx(score(tuple(greedy)))


def test_sampling_one_id_at_a_time_steps_only_as_far_as_asked():
    steps = []

    def counted(ids, states):
        steps.append(int(ids[0, 0]))
        return toy_step(ids, states)

    sampling = Sampling(length=50, temperature=1.0, seed=5)
    ids = stream_ids(counted, STATES, START, sampling, excluded=())
    assert steps == []
    first = list(itertools.islice(ids, 3))
    assert steps == [*START, *first[:2]]  # the prefix, then each id but the last fed back
    assert first == generate(toy_step, STATES, START, sampling, excluded=())[:3]


def test_rows_joining_a_sampler_at_any_step_sample_as_they_do_alone():
    """Rows of several prefixes and settings join one at a step; one is dropped mid-way and
    the others go on as if alone (stream_ids is the sampler of one row)."""
    rows = [  # (prefix, settings)
        ([2, 3], Sampling(length=6, temperature=1.0, seed=1)),
        ([1], Sampling(length=9, temperature=0.7, top_k=2, seed=2)),
        ([3, 3, 0], Sampling(length=0, seed=3)),
        ([0], Sampling(length=4, temperature=0.0)),
        ([2], Sampling(length=30, temperature=1.0, seed=4)),  # dropped after 3 steps
    ]
    sampler, states = Sampler(excluded=()), [np.zeros((0, 1), np.int64)]
    sampled: dict[int, list[int]] = {label: [] for label in range(len(rows))}
    ended, steps = [], 0
    while steps < len(rows) or sampler.rows:
        if steps < len(rows):
            before = sampler.rows
            sampler.add(steps, *rows[steps])
            states = [np.concatenate([states[0], np.zeros((sampler.rows - before, 1), np.int64)])]
        if steps == 7:
            states = rows_of(states, sampler.drop({4}))
        logits, states = toy_step(sampler.tokens, states)
        states = rows_of(states, sampler.advance(logits))
        for label, token in sampler.take_sampled():
            sampled[label].append(token)
        ended += sampler.take_ended()
        steps += 1
    for label, (prefix, settings) in enumerate(rows[:4]):
        assert sampled[label] == generate(toy_step, STATES, prefix, settings, excluded=())
    assert sorted(ended) == [0, 1, 2, 3] and len(sampled[4]) == 3
    assert sampled[4] == generate(toy_step, STATES, [2], rows[4][1], excluded=())[:3]


def test_a_narrow_beam_can_beat_greedy_but_not_enumeration():
    length = 4
    best = ranked(itertools.product(range(VOCAB), repeat=length))[0]
    greedy = beam_search(toy_step, STATES, START, Beam(length, 1), excluded=())[0]
    narrow = beam_search(toy_step, STATES, START, Beam(length, 3), excluded=())[0]
    assert greedy[1] <= narrow[1] + 1e-12 and narrow[1] <= best[1] + 1e-12


def test_excluded_ids_are_never_produced():
    found = beam_search(toy_step, STATES, START, Beam(3, 8), excluded=(0, 1))
    assert len(found) == 8 and all(set(ids) <= {2, 3} for ids, _ in found)


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        (Sampling(length=-1), "--length must be in [0, 100000]"),
        (Sampling(temperature=float("nan")), "--temperature must be >= 0"),
        (Sampling(top_k=VOCAB + 1), "--top-k must be in [0, 4] (0: all)"),
        (Beam(length=3, width=0), "--beam-width must be >= 1"),
    ],
)
def test_settings_out_of_range_are_user_errors(settings, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        settings.check(VOCAB) if isinstance(settings, Sampling) else settings.check()


def test_a_length_penalty_ranks_by_mean_log_probability_as_enumeration_does():
    """With length_penalty 1 a full-width beam ranks every sequence (ended at END, or of the
    full length) by log-probability per id, as scoring each one does."""
    length, end = 3, 0
    sequences = [
        (*prefix, end) if stop else prefix
        for n in range(1, length + 1)
        for prefix in itertools.product(range(1, VOCAB), repeat=n - 1)
        for stop in (True,)
    ] + list(itertools.product(range(1, VOCAB), repeat=length))
    expected = sorted(
        ((list(s), score(s)) for s in sequences), key=lambda pair: -pair[1] / len(pair[0])
    )
    beam = Beam(length, len(sequences), end, length_penalty=1.0)
    found = beam_search(toy_step, STATES, START, beam, excluded=())
    check(found, expected)
    assert [ids for ids, _ in found] != [ids for ids, _ in ranked(sequences)]  # it matters


def test_batched_greedy_takes_each_rows_most_likely_id_until_the_end_id():
    """Each row's ids, and their log-probability summed one step at a time."""
    starts, end = np.array([2, 3, 1]), 0
    rows = greedy(toy_step, [np.zeros((3, 1), np.int64)], starts, 6, end, excluded=())
    for start, (row, log_probability) in zip(starts, rows, strict=True):
        expected, total, states, token = [], 0.0, STATES, int(start)
        while len(expected) < 6 and end not in expected:
            logits, states = toy_step(np.array([[token]]), states)
            token = int(np.argmax(logits[0]))
            total += log_softmax(logits)[0, token]
            expected.append(token)
        assert row == expected
        assert log_probability == pytest.approx(total, abs=1e-12) and log_probability < 0
        assert end not in row[:-1]
    never_ending = greedy(toy_step, [np.zeros((3, 1), np.int64)], starts, 4, end, excluded=(end,))
    assert [len(row) for row, _ in never_ending] == [4, 4, 4]
    empty = greedy(toy_step, [np.zeros((3, 1), np.int64)], starts, 0, end)
    assert empty == [([], 0.0), ([], 0.0), ([], 0.0)]


def test_states_by_name_are_searched_as_a_list_is():
    """A step whose states are a dict (translate's ``DecoderState``) gets each beam's parent
    rows of every state, and finds what the same step over a list finds."""

    def named_step(ids: np.ndarray, states: dict[str, np.ndarray]):
        assert len(states["memory"]) == len(ids)  # carried along with its beam
        logits, (history,) = toy_step(ids, [states["history"]])
        return logits, {"history": history, "memory": states["memory"]}

    named = {"history": STATES[0], "memory": np.zeros((1, 5))}
    beam = Beam(3, 8)
    found = beam_search(named_step, named, START, beam, excluded=())
    check(found, beam_search(toy_step, STATES, START, beam, excluded=()))


def test_states_are_copied_only_when_their_rows_change():
    """``rows_of`` all rows in order, and ``concatenate_rows`` of one part, are the states
    themselves (a step where no row ended copies nothing); any other rows are new arrays."""
    named = {"history": np.arange(6).reshape(3, 2), "memory": np.ones((3, 4))}
    listed = list(named.values())
    for states in (named, listed):
        assert rows_of(states, np.arange(3)) is states
        assert concatenate_rows([states]) is states
    picked = rows_of(named, np.array([2, 0, 0]))
    assert np.array_equal(picked["history"], [[4, 5], [0, 1], [0, 1]])
    fewer = rows_of(listed, np.array([0, 1]))
    assert fewer is not listed and np.array_equal(fewer[0], [[0, 1], [2, 3]])
    twice = concatenate_rows([named, named])
    assert np.array_equal(twice["memory"], np.ones((6, 4)))
