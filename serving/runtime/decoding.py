"""Decoding over a step function (numpy only): sampling, greedy and beam search. The Keras
path and the onnxruntime path pass their own step to the same loops, so the same settings
give the same ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from serving.errors import UserError
from serving.runtime.vocab import PAD, UNKNOWN

MAX_GENERATED = 100_000  # ids one call may generate
RESERVED = (PAD, UNKNOWN)  # never produced

# A decoder's states between steps: arrays, batch first, in a list or by name.
States = list[np.ndarray] | Mapping[str, np.ndarray]
# step(token ids (batch, 1), states) -> (logits (batch, vocab), new states)
Step = Callable[[np.ndarray, States], tuple[np.ndarray, States]]


@dataclass(frozen=True)
class Sampling:
    """How to sample: ``length`` ids, greedy when ``temperature`` is 0, else drawn among the
    ``top_k`` most likely (0: all) with ``seed``."""

    length: int = 200
    temperature: float = 0.5
    top_k: int = 0
    seed: int = 0

    def check(self, vocab_size: int) -> None:
        """Raise UserError, naming the flag, for a setting out of range."""
        _check_length(self.length)
        if not (np.isfinite(self.temperature) and self.temperature >= 0):
            raise UserError(f"--temperature must be >= 0, got {self.temperature}")
        if not 0 <= self.top_k <= vocab_size:
            raise UserError(f"--top-k must be in [0, {vocab_size}] (0: all), got {self.top_k}")


@dataclass(frozen=True)
class Beam:
    """Beam search: at most ``length`` ids, ``width`` beams; a beam ends at ``end_id``.
    Finished sequences rank by log-probability / (ids ** ``length_penalty``): 0 ranks by
    log-probability alone (which favours short sequences), 1 by its mean per id."""

    length: int
    width: int
    end_id: int | None = None
    length_penalty: float = 0.0

    def check(self) -> None:
        """Raise UserError, naming the flag, for a setting out of range."""
        _check_length(self.length)
        if self.width < 1:
            raise UserError(f"--beam-width must be >= 1, got {self.width}")
        if not (np.isfinite(self.length_penalty) and self.length_penalty >= 0):
            raise UserError(f"--length-penalty must be >= 0, got {self.length_penalty}")

    def rank(self, ids: Sequence[int], log_probability: float) -> float:
        """The score that orders finished sequences (higher is better)."""
        return normalised(log_probability, len(ids), self.length_penalty)


def normalised(log_probability: float, count: int, length_penalty: float = 1.0) -> float:
    """``log_probability`` / ``count`` ** ``length_penalty`` (``count`` at least 1): with
    the default penalty, the mean log-probability per id."""
    return log_probability / max(count, 1) ** length_penalty


def sample_next(
    logits: np.ndarray,
    temperature: float,
    top_k: int,
    rng: np.random.Generator,
    excluded: Sequence[int] = RESERVED,
) -> int:
    """The next id from one row of logits: the most likely one when ``temperature`` is 0,
    else a draw from softmax(logits / temperature) over the ``top_k`` most likely (0: all).
    The ``excluded`` ids are never produced."""
    scores = np.asarray(logits, np.float64).copy()
    scores[list(excluded)] = -np.inf
    if temperature == 0:
        return int(np.argmax(scores))
    if top_k:
        scores[np.argsort(scores)[: -top_k or None]] = -np.inf
    scores = (scores - scores.max()) / temperature
    probabilities = np.exp(scores)
    return int(rng.choice(len(scores), p=probabilities / probabilities.sum()))


def feed(step: Step, states: States, prefix_ids: Sequence[int]) -> tuple[np.ndarray, States]:
    """The logits and states after feeding ``prefix_ids`` (at least one) one at a time."""
    if len(prefix_ids) == 0:
        raise ValueError("decoding needs at least one id to start from")
    logits = None
    for token in prefix_ids:
        logits, states = step(np.array([[token]], np.int32), states)
    return logits, states


def stream_ids(
    step: Step,
    states: list[np.ndarray],
    prefix_ids: Sequence[int],
    sampling: Sampling,
    excluded: Sequence[int] = RESERVED,
) -> Iterator[int]:
    """Feed the prefix, then yield ``sampling.length`` sampled ids one at a time, each fed
    back (batch 1). Nothing runs until the first id is asked for, and nothing more once the
    caller stops asking."""
    rng = np.random.default_rng(sampling.seed)
    logits, states = feed(step, states, prefix_ids)
    for _ in range(sampling.length):
        token = sample_next(logits[0], sampling.temperature, sampling.top_k, rng, excluded)
        yield token
        logits, states = step(np.array([[token]], np.int32), states)


def generate(
    step: Step,
    states: States,
    prefix_ids: Sequence[int],
    sampling: Sampling,
    excluded: Sequence[int] = RESERVED,
) -> list[int]:
    """Every id of ``stream_ids``, as one list."""
    return list(stream_ids(step, states, prefix_ids, sampling, excluded))


def greedy(
    step: Step,
    states: States,
    start_ids: np.ndarray,
    length: int,
    end_id: int,
    excluded: Sequence[int] = RESERVED,
) -> list[tuple[list[int], float]]:
    """The most likely next id, fed back, for a batch: each row starts from its
    ``start_ids`` entry and runs until it produces ``end_id`` (included) or ``length`` ids;
    each row's ids come with their log-probability (the sum over its ids, under the softmax
    of all logits). Rows that have ended are still stepped (the batch stays whole) but take
    no more ids."""
    tokens = np.asarray(start_ids, np.int32).reshape(-1, 1)
    rows: list[list[int]] = [[] for _ in range(len(tokens))]
    totals = np.zeros(len(tokens))
    running = np.ones(len(tokens), bool)
    for _ in range(length):
        logits, states = step(tokens, states)
        scores = np.asarray(logits, np.float64).copy()
        scores[:, list(excluded)] = -np.inf
        chosen = scores.argmax(axis=-1)
        chosen_log_probabilities = np.take_along_axis(
            log_softmax(np.asarray(logits, np.float64)), chosen[:, None], axis=-1
        )[:, 0]
        totals[running] += chosen_log_probabilities[running]
        for row in np.flatnonzero(running):
            rows[row].append(int(chosen[row]))
        running &= chosen != end_id
        if not running.any():
            break
        tokens = chosen.astype(np.int32)[:, None]
    return [(row, float(total)) for row, total in zip(rows, totals, strict=True)]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities of each row of logits (shifted by the row's maximum: no overflow)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def beam_search(
    step: Step,
    states: States,
    prefix_ids: Sequence[int],
    beam: Beam,
    excluded: Sequence[int] = RESERVED,
) -> list[tuple[list[int], float]]:
    """The ``beam.width`` best continuations of the prefix, best first (``Beam.rank``), each
    with its log-probability. The step runs on a batch of beams; a beam that produces
    ``end_id`` ends there (the id included), the others run ``beam.length`` ids."""
    logits, states = feed(step, states, prefix_ids)
    alive: list[list[int]] = [[]]
    scores = np.zeros(1)
    finished: list[tuple[list[int], float]] = []
    for _ in range(beam.length):
        log_probabilities = log_softmax(np.asarray(logits, np.float64))
        log_probabilities[:, list(excluded)] = -np.inf
        totals = scores[:, None] + log_probabilities
        if beam.end_id is not None:  # every beam may end here; the best of them are kept
            ended = totals[:, beam.end_id]
            finished += [
                ([*ids, beam.end_id], float(total))
                for ids, total in zip(alive, ended, strict=True)
                if np.isfinite(total)
            ]
            finished = sorted(finished, key=lambda pair: -beam.rank(*pair))[: beam.width]
            totals[:, beam.end_id] = -np.inf
        order = np.argsort(-totals, axis=None, kind="stable")[: beam.width]
        parents, tokens = np.divmod(order[np.isfinite(totals.ravel()[order])], totals.shape[1])
        # Log-probabilities only fall: without a length penalty, a beam below the width-th
        # finished one never rises above it (with one, its rank can: search on).
        if not len(parents) or (
            beam.length_penalty == 0
            and len(finished) == beam.width
            and totals[parents[0], tokens[0]] <= finished[-1][1]
        ):
            return finished
        alive = [[*alive[p], int(t)] for p, t in zip(parents, tokens, strict=True)]
        scores = totals[parents, tokens]
        states = rows_of(states, parents)
        logits, states = step(tokens.astype(np.int32)[:, None], states)
    best = finished + [(ids, float(s)) for ids, s in zip(alive, scores, strict=True)]
    return sorted(best, key=lambda pair: -beam.rank(*pair))[: beam.width]


def rows_of(states: States, rows: np.ndarray) -> States:
    """The given ``rows`` of every state (beam search: each new beam's parent)."""
    if isinstance(states, Mapping):
        return {name: state[rows] for name, state in states.items()}
    return [state[rows] for state in states]


def _check_length(length: int) -> None:
    if not 0 <= length <= MAX_GENERATED:
        raise UserError(f"--length must be in [0, {MAX_GENERATED}], got {length}")
