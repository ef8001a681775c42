"""Decoding over a step function (numpy only): sampling, greedy and beam search. The Keras
path and the onnxruntime path pass their own step to the same loops, so the same settings
give the same ids."""

from __future__ import annotations

from collections.abc import (
    Callable,
    Collection,
    Hashable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
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
    states: States,
    prefix_ids: Sequence[int],
    sampling: Sampling,
    excluded: Sequence[int] = RESERVED,
) -> Iterator[int]:
    """Feed the prefix, then yield ``sampling.length`` sampled ids one at a time, each fed
    back (a ``Sampler`` of one row, batch 1). Nothing runs until the first id is asked for,
    and nothing more once the caller stops asking."""
    sampler = Sampler(excluded)
    sampler.add(None, prefix_ids, sampling)
    while sampler.rows:
        logits, states = step(sampler.tokens, states)
        states = rows_of(states, sampler.advance(logits))
        for _, token in sampler.take_sampled():
            yield token


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
    of all logits). A row that has ended leaves the batch (``GreedySearch``)."""
    search = GreedySearch(end_id, excluded)
    search.add(range(len(start_ids)), start_ids, length)
    run_search(step, states, search)
    ended = dict(search.take_ended())
    return [ended[row] for row in range(len(start_ids))]


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
    if len(prefix_ids) == 0:
        raise ValueError("decoding needs at least one id to start from")
    for token in prefix_ids[:-1]:
        _, states = step(np.array([[token]], np.int32), states)
    search = BeamSearch(beam, prefix_ids[-1], excluded)
    run_search(step, states, search)
    return search.results()


class GreedySearch:
    """Greedy decoding one step at a time, over rows that join at any step (``add``) and
    leave when they end: ``tokens`` holds the next step's input ids, one row each;
    ``advance`` takes that step's log-probabilities (``log_softmax`` of its logits) and
    returns the rows that go on, by which the caller keeps the rows of its states. Rows ended
    wait in ``take_ended``. Each row's answer depends on its own log-probabilities only, so
    a row decodes the same ids alone or among any others."""

    def __init__(self, end_id: int, excluded: Sequence[int] = RESERVED):
        self.end_id, self.excluded = end_id, list(excluded)
        self.tokens = np.zeros((0, 1), np.int32)
        self._labels: list[Hashable] = []
        self._ids: list[list[int]] = []
        self._totals = np.zeros(0)
        self._left = np.zeros(0, np.int64)  # ids each row may still produce
        self._ended: list[tuple[Hashable, tuple[list[int], float]]] = []

    @property
    def rows(self) -> int:
        """How many rows are decoding."""
        return len(self._labels)

    @property
    def labels(self) -> list[Hashable]:
        """The labels of the rows decoding, in order."""
        return list(self._labels)

    def add(self, labels: Iterable[Hashable], start_ids: Sequence[int], length: int) -> None:
        """Rows that start from ``start_ids`` and produce at most ``length`` ids, after the
        rows there are (their states go after theirs); ``labels`` name them in
        ``take_ended``. With ``length`` 0 they end at once, without ids."""
        labels = list(labels)
        if length == 0:
            self._ended += [(label, ([], 0.0)) for label in labels]
            return
        starts = np.asarray(start_ids, np.int32).reshape(-1, 1)
        self.tokens = np.concatenate([self.tokens, starts])
        self._labels += labels
        self._ids += [[] for _ in labels]
        self._totals = np.concatenate([self._totals, np.zeros(len(labels))])
        self._left = np.concatenate([self._left, np.full(len(labels), length)])

    def advance(self, log_probabilities: np.ndarray) -> np.ndarray:
        """Take each row's most likely id (never an excluded one); the rows that go on."""
        scores = log_probabilities.copy()
        scores[:, self.excluded] = -np.inf
        chosen = scores.argmax(axis=-1)
        self._totals = self._totals + log_probabilities[np.arange(len(chosen)), chosen]
        self._left = self._left - 1
        for ids, token in zip(self._ids, chosen.tolist(), strict=True):
            ids.append(token)
        ending = (chosen == self.end_id) | (self._left == 0)
        self._ended += [
            (self._labels[row], (self._ids[row], float(self._totals[row])))
            for row in np.flatnonzero(ending).tolist()
        ]
        kept = np.flatnonzero(~ending)
        self._labels = [self._labels[row] for row in kept.tolist()]
        self._ids = [self._ids[row] for row in kept.tolist()]
        self._totals, self._left = self._totals[kept], self._left[kept]
        self.tokens = chosen[kept].astype(np.int32)[:, None]
        return kept

    def take_ended(self) -> list[tuple[Hashable, tuple[list[int], float]]]:
        """The rows ended since the last call: each label with its ids (``end_id``
        included where produced) and their log-probability."""
        ended, self._ended = self._ended, []
        return ended


class BeamSearch:
    """``beam_search`` one step at a time, after a prefix whose last id is ``start_id``:
    ``tokens`` holds the next step's input ids, one row per beam alive; ``advance`` takes
    that step's log-probabilities (``log_softmax`` of its logits) and returns the beams the
    next step continues (rows of the states, a beam's as often as it goes on), none once the
    search is over; then ``results`` ranks what it found."""

    def __init__(self, beam: Beam, start_id: int, excluded: Sequence[int] = RESERVED):
        self.beam, self.excluded = beam, list(excluded)
        self.tokens = np.array([[start_id]], np.int32)
        self._alive: list[list[int]] = [[]]
        self._scores = np.zeros(1)
        self._finished: list[tuple[list[int], float]] = []
        self._steps = 0

    @property
    def rows(self) -> int:
        """How many beams the next step runs (0: the search is over)."""
        return len(self.tokens)

    def advance(self, log_probabilities: np.ndarray) -> np.ndarray:
        """Extend the beams by one id each; the beams that go on (parents)."""
        beam = self.beam
        if self._steps == beam.length:
            return self._over()
        totals = self._scores[:, None] + log_probabilities
        totals[:, self.excluded] = -np.inf
        if beam.end_id is not None:  # every beam may end here; the best of them are kept
            ended = totals[:, beam.end_id]
            self._finished += [
                ([*ids, beam.end_id], float(total))
                for ids, total in zip(self._alive, ended, strict=True)
                if np.isfinite(total)
            ]
            self._finished = sorted(self._finished, key=lambda pair: -beam.rank(*pair))
            del self._finished[beam.width :]
            totals[:, beam.end_id] = -np.inf
        order = np.argsort(-totals, axis=None, kind="stable")[: beam.width]
        parents, tokens = np.divmod(order[np.isfinite(totals.ravel()[order])], totals.shape[1])
        # Log-probabilities only fall: without a length penalty, a beam below the width-th
        # finished one never rises above it (with one, its rank can: search on).
        if not len(parents) or (
            beam.length_penalty == 0
            and len(self._finished) == beam.width
            and totals[parents[0], tokens[0]] <= self._finished[-1][1]
        ):
            self._alive, self._scores = [], np.zeros(0)
            return self._over()
        self._alive = [[*self._alive[p], int(t)] for p, t in zip(parents, tokens, strict=True)]
        self._scores = totals[parents, tokens]
        self._steps += 1
        if self._steps == beam.length:
            return self._over()
        self.tokens = tokens.astype(np.int32)[:, None]
        return parents

    def _over(self) -> np.ndarray:
        self.tokens = np.zeros((0, 1), np.int32)
        return np.zeros(0, np.int64)

    def results(self) -> list[tuple[list[int], float]]:
        """The ``beam.width`` best sequences found, best first, each with its
        log-probability."""
        alive = [(ids, float(score)) for ids, score in zip(self._alive, self._scores, strict=True)]
        best = sorted(self._finished + alive, key=lambda pair: -self.beam.rank(*pair))
        return best[: self.beam.width]


@dataclass(eq=False)
class _SampledRow:
    """A row of a ``Sampler``: its label, its prefix and how much of it is fed, its settings,
    its own generator, and how many ids it may still sample."""

    label: Hashable
    prefix_ids: Sequence[int]
    fed: int
    sampling: Sampling
    rng: np.random.Generator
    left: int


class Sampler:
    """Sampling one step at a time, over rows that join at any step (``add``) and leave when
    they have sampled their ids or are dropped (``drop``): ``tokens`` holds the next step's
    input ids, one row each (a row feeds its prefix first, one id a step); ``advance`` takes
    that step's logits and returns the rows that go on, by which the caller keeps the rows of
    its states. The ids sampled wait in ``take_sampled``, the rows ended in ``take_ended``.
    Each row samples from its own logits with its own generator (seeded with its
    ``sampling.seed``), so a row samples the same ids alone or among any others."""

    def __init__(self, excluded: Sequence[int] = RESERVED):
        self.excluded = excluded
        self.tokens = np.zeros((0, 1), np.int32)
        self._rows: list[_SampledRow] = []
        self._sampled: list[tuple[Hashable, int]] = []
        self._ended: list[Hashable] = []

    @property
    def rows(self) -> int:
        """How many rows the next step runs."""
        return len(self._rows)

    @property
    def labels(self) -> list[Hashable]:
        """The labels of the rows stepping, in order."""
        return [row.label for row in self._rows]

    def add(self, label: Hashable, prefix_ids: Sequence[int], sampling: Sampling) -> None:
        """A row, after the rows there are (its states go after theirs), that feeds
        ``prefix_ids`` (at least one), then samples ``sampling.length`` ids, each fed back;
        ``label`` names it in ``take_sampled`` and ``take_ended``. With length 0 it ends at
        once, without a step."""
        if len(prefix_ids) == 0:
            raise ValueError("decoding needs at least one id to start from")
        if sampling.length == 0:
            self._ended.append(label)
            return
        rng = np.random.default_rng(sampling.seed)
        self._rows.append(_SampledRow(label, prefix_ids, 1, sampling, rng, sampling.length))
        self.tokens = np.concatenate([self.tokens, [[prefix_ids[0]]]]).astype(np.int32)

    def advance(self, logits: np.ndarray) -> np.ndarray:
        """Feed each row's next prefix id, or sample its next id from its row of ``logits``
        once its prefix is fed; the rows that go on."""
        kept, tokens = [], []
        for index, row in enumerate(self._rows):
            if row.fed < len(row.prefix_ids):
                token = row.prefix_ids[row.fed]
                row.fed += 1
            else:
                settings = row.sampling
                token = sample_next(
                    logits[index], settings.temperature, settings.top_k, row.rng, self.excluded
                )
                self._sampled.append((row.label, token))
                row.left -= 1
                if not row.left:
                    self._ended.append(row.label)
                    continue
            kept.append(index)
            tokens.append(token)
        return self._keep(np.array(kept, np.int64), tokens)

    def drop(self, labels: Collection[Hashable]) -> np.ndarray:
        """Take the rows of ``labels`` out before they end (they are not in ``take_ended``);
        the rows that stay."""
        kept = np.array(
            [index for index, row in enumerate(self._rows) if row.label not in labels], np.int64
        )
        return self._keep(kept, self.tokens[kept, 0].tolist())

    def take_sampled(self) -> list[tuple[Hashable, int]]:
        """The ids sampled since the last call, in order, each with its row's label."""
        sampled, self._sampled = self._sampled, []
        return sampled

    def take_ended(self) -> list[Hashable]:
        """The labels of the rows that have sampled their ids since the last call."""
        ended, self._ended = self._ended, []
        return ended

    def _keep(self, kept: np.ndarray, tokens: list[int]) -> np.ndarray:
        self._rows = [self._rows[index] for index in kept]
        self.tokens = np.array(tokens, np.int32).reshape(-1, 1)
        return kept


def run_search(step: Step, states: States, search: GreedySearch | BeamSearch) -> None:
    """Step ``states`` through ``search`` until it has no row left."""
    while search.rows:
        logits, states = step(search.tokens, states)
        kept = search.advance(log_softmax(np.asarray(logits, np.float64)))
        states = rows_of(states, kept)


def rows_of(states: States, rows: np.ndarray) -> States:
    """The given ``rows`` of every state, in that order (a row may repeat: beam search
    continues a beam as often as it has children); ``states`` themselves, not a copy, when
    ``rows`` are all of them in order (no row ended)."""
    arrays = list(states.values()) if isinstance(states, Mapping) else states
    if np.array_equal(rows, np.arange(len(arrays[0]))):
        return states
    if isinstance(states, Mapping):
        return {name: state[rows] for name, state in states.items()}
    return [state[rows] for state in states]


def concatenate_rows(parts: Sequence[States]) -> States:
    """The rows of every part, one part after another, state by state (parts of the same
    states: the same names, or as many in a list); a single part is returned as it is."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, Mapping):
        return {name: np.concatenate([part[name] for part in parts]) for name in first}
    return [np.concatenate(column) for column in zip(*parts, strict=True)]


def _check_length(length: int) -> None:
    if not 0 <= length <= MAX_GENERATED:
        raise UserError(f"--length must be in [0, {MAX_GENERATED}], got {length}")
