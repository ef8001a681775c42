"""Continuous batching: the rows of concurrent requests step together, one step-graph call
per step for every row of every request in flight. A request that arrives while others step
joins at the next step, and its rows leave the batch as they end. ``ContinuousDecoder`` is the
one step loop; two decoders run on it:

- ``ContinuousTranslator``: translations, one ``decoder_step`` call per step. Newcomers'
  sources are encoded together (one ``encoder`` call); greedy and beam search alike. The
  bookkeeping is ``serving.runtime``'s, which ``serving.predict`` runs too: the
  ``Translator``'s sources, encoder and step, one ``GreedySearch`` whose rows are every greedy
  text in flight, and a ``BeamSearch`` per beam-searched text (its beams are its rows). Each
  source is padded to the model's length limit whatever its batchmates
  (``Translator.source_batch``).
- ``ContinuousGenerator``: charlm generations, one ``lm_step`` call per step, one row per
  generation, which feeds its prefix one character a step and then samples with its own
  generator (one ``Sampler``, whose single-row case is ``serving.predict``'s ``stream_ids``).
  Each character is handed to its request as it is sampled; a request whose client has gone
  (``Generation.close``) leaves at the next step.

Every answer equals the answer to the same request sent alone: the encoder and the step graphs
compute each row from that row alone (measured bitwise here, batches of 1 to 100).
"""

from __future__ import annotations

import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import numpy as np

from serving.runtime.charlm import checked_prefix, onnx_step
from serving.runtime.decoding import (
    Beam,
    BeamSearch,
    GreedySearch,
    Sampler,
    Sampling,
    concatenate_rows,
    log_softmax,
    rows_of,
)
from serving.runtime.graph import ExportedGraph
from serving.runtime.translate import DecoderState, Translation, Translator
from serving.runtime.vocab import Vocabulary


class _Stepped(Protocol):
    """A request of a continuous decoder: the most rows it takes at once, and how it hears
    of a fault of the model."""

    @property
    def rows(self) -> int: ...

    def fail(self, error: Exception) -> None: ...


Request = TypeVar("Request", bound=_Stepped)


class ContinuousDecoder(ABC, Generic[Request]):
    """The step loop of continuous batching, in a thread of its own: requests queue, join at
    the next step in arrival order while their rows fit beside the rows stepping, up to
    ``max_rows`` (a request larger than that joins once nothing else steps), and leave as
    they end. A fault of the model fails every request in flight and drops their rows.

    A decoder writes ``rows``, ``_join``, ``_step``, ``_requests`` and ``_reset``, and
    submits its requests with ``_submit``; it sets up its own state before calling
    ``__init__``, which starts the thread."""

    def __init__(self, max_rows: int, name: str):
        self.max_rows, self.name = max_rows, name
        self._queue: list[Request] = []
        self._changed = threading.Condition()  # guards the queue and _closed
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    @property
    @abstractmethod
    def rows(self) -> int:
        """How many rows the next step runs."""

    @property
    def waiting(self) -> int:
        """How many requests wait to join."""
        with self._changed:
            return len(self._queue)

    def close(self) -> None:
        """Step what is queued and in flight to its end, then stop the thread."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()

    def _submit(self, request: Request) -> None:
        """Queue ``request`` to join at the next step."""
        with self._changed:
            if self._closed:
                raise RuntimeError(f"the decoder {self.name} is closed")
            self._queue.append(request)
            self._changed.notify()

    def _serve(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self.rows:
                    if self._closed:
                        return
                    self._changed.wait()
                joining = self._joining()
            try:
                if joining:
                    self._join(joining)
                if self.rows:
                    self._step()
            except Exception as error:  # a fault of the model: every request in flight fails
                for request in dict.fromkeys([*joining, *self._requests()]):
                    request.fail(error)
                self._reset()

    def _joining(self) -> list[Request]:
        """The queued requests that fit beside the rows stepping, taken from the queue."""
        rows, joining = self.rows, []
        while self._queue and (not rows or rows + self._queue[0].rows <= self.max_rows):
            request = self._queue.pop(0)
            joining.append(request)
            rows += request.rows
        return joining

    @abstractmethod
    def _join(self, requests: list[Request]) -> None:
        """Add the rows of ``requests``."""

    @abstractmethod
    def _step(self) -> None:
        """One step of every row; the rows ended leave, and their requests hear."""

    @abstractmethod
    def _requests(self) -> list[Request]:
        """The requests with rows stepping."""

    @abstractmethod
    def _reset(self) -> None:
        """Drop every row."""


Decoded = tuple[list[int], float]  # a text's ids and their log-probability


@dataclass(eq=False)
class _Request:
    """One request's texts to decode: their source ids (one row each), the beam search to
    run on each (None: greedy), and what each decoded to so far."""

    ids: np.ndarray
    beam: Beam | None
    width: int  # rows a text may take
    decoded: list[Decoded | None]
    future: Future = field(default_factory=Future)

    @property
    def rows(self) -> int:
        """The most rows its texts take at once."""
        return len(self.ids) * self.width

    def done(self, text: int, decoded: Decoded) -> None:
        self.decoded[text] = decoded
        if all(row is not None for row in self.decoded):
            self.future.set_result(self.decoded)

    def fail(self, error: Exception) -> None:
        if not self.future.done():
            self.future.set_exception(error)


@dataclass(eq=False)
class _Beam:
    """A beam-searched text in flight: its request, its place there, and its search."""

    request: _Request
    text: int
    search: BeamSearch


class ContinuousTranslator(ContinuousDecoder[_Request]):
    """Decodes the texts of every ``translate`` call together (``ContinuousDecoder``)."""

    def __init__(self, translator: Translator, max_rows: int, name: str = "translate"):
        self.translator = translator
        self._greedy = GreedySearch(translator.end_id)
        self._greedy_states: DecoderState | None = None  # the greedy rows', once any joined
        self._beams: list[_Beam] = []
        self._beam_states: list[DecoderState] = []
        super().__init__(max_rows, f"decode-{name}")

    def translate(
        self, texts: Sequence[str], width: int = 1, length_penalty: float = 1.0
    ) -> list[Translation]:
        """What ``Translator.greedy`` (``width`` 1) or ``Translator.beam`` answers for
        ``texts``, decoded together with the other requests in flight."""
        translator = self.translator
        settings = translator.beam_settings(width, length_penalty) if width > 1 else None
        results: list[Translation | None] = [None] * len(texts)
        todo = translator.translate_empty(texts, results)
        if not todo:
            return results
        ids, tokens, unknown = translator.source_batch([texts[row] for row in todo])
        request = _Request(ids, settings, width, [None] * len(todo))
        self._submit(request)
        for row, text_tokens, text_unknown, (output, log_probability) in zip(
            todo, tokens, unknown, request.future.result(), strict=True
        ):
            penalty = settings.length_penalty if settings else 1.0
            results[row] = translator.finish(
                text_tokens, output, log_probability, text_unknown, penalty
            )
        return results

    @property
    def rows(self) -> int:
        return self._greedy.rows + sum(beam.search.rows for beam in self._beams)

    def _join(self, requests: list[_Request]) -> None:
        """Encode the sources of ``requests`` in one call and add their rows."""
        states = self.translator.encode(np.concatenate([request.ids for request in requests]))
        texts = [(request, text) for request in requests for text in range(len(request.ids))]
        greedy = [row for row, (request, _) in enumerate(texts) if request.beam is None]
        if greedy:
            self.translator.add_greedy(self._greedy, [texts[row] for row in greedy])
            joined = rows_of(states, np.array(greedy))
            before = [] if self._greedy_states is None else [self._greedy_states]
            self._greedy_states = concatenate_rows([*before, joined])
        for row, (request, text) in enumerate(texts):
            if request.beam is not None:
                search = BeamSearch(request.beam, self.translator.start_id)
                self._beams.append(_Beam(request, text, search))
                self._beam_states.append(rows_of(states, np.array([row])))

    def _step(self) -> None:
        searches = [self._greedy, *(beam.search for beam in self._beams)]
        parts = [self._greedy_states, *self._beam_states]
        in_step = [index for index, search in enumerate(searches) if search.rows]
        tokens = np.concatenate([searches[index].tokens for index in in_step])
        stepping = [parts[index] for index in in_step]
        logits, states = self.translator.plain_step(tokens, concatenate_rows(stepping))
        log_probabilities = log_softmax(np.asarray(logits, np.float64))
        start = 0
        for index in in_step:
            search = searches[index]
            rows = slice(start, start + search.rows)
            start = rows.stop
            kept = search.advance(log_probabilities[rows]) + rows.start
            parts[index] = rows_of(states, kept)
        self._greedy_states = parts[0]
        for (request, text), decoded in self._greedy.take_ended():
            request.done(text, decoded)
        going = []
        for beam, beam_states in zip(self._beams, parts[1:], strict=True):
            if beam.search.rows:
                going.append((beam, beam_states))
            else:
                beam.request.done(beam.text, beam.search.results()[0])
        self._beams = [beam for beam, _ in going]
        self._beam_states = [beam_states for _, beam_states in going]

    def _requests(self) -> list[_Request]:
        greedy = {label[0] for label in self._greedy.labels}
        return [*greedy, *(beam.request for beam in self._beams)]

    def _reset(self) -> None:
        self._greedy = GreedySearch(self.translator.end_id)
        self._greedy_states, self._beams, self._beam_states = None, [], []


_END = None  # what a generation's queue holds after its last character


class Generation(Iterator[str]):
    """One request's generated characters, each as the decoder samples it: iterating waits
    for the next; ``close`` ends them and takes the row out of the batch at the next step (its
    client has gone). A fault of the model is raised where the characters stop."""

    rows = 1

    def __init__(self, prefix_ids: np.ndarray, sampling: Sampling):
        self.prefix_ids, self.sampling = prefix_ids, sampling
        self.closed = False
        self._pieces: queue.SimpleQueue[str | Exception | None] = queue.SimpleQueue()
        self._over = False

    def __next__(self) -> str:
        if self._over:
            raise StopIteration
        piece = self._pieces.get()
        if isinstance(piece, str):
            return piece
        self._over = True
        if piece is _END:
            raise StopIteration
        raise piece

    def close(self) -> None:
        """Stop generating: the characters end here, and the row leaves at the next step."""
        self.closed = self._over = True

    def hear(self, piece: str) -> None:
        self._pieces.put(piece)

    def end(self) -> None:
        self._pieces.put(_END)

    def fail(self, error: Exception) -> None:
        self._pieces.put(error)


class ContinuousGenerator(ContinuousDecoder[Generation]):
    """Generates the texts of every ``stream`` call together (``ContinuousDecoder``) with the
    exported ``lm_step`` graph: one row per generation."""

    def __init__(
        self, graph: ExportedGraph, vocab: Vocabulary, max_rows: int, name: str = "charlm"
    ):
        self.step, self.vocab = onnx_step(graph), vocab
        self._zero_row = [
            np.zeros((1, graph.runtime["units"]), np.float32) for _ in graph.runtime["states"]
        ]
        self._reset()
        super().__init__(max_rows, f"generate-{name}")

    def stream(self, prefix: str, settings: Sampling) -> tuple[Generation, list[str]]:
        """What ``serving.runtime.charlm.onnx_stream`` answers for ``prefix`` and ``settings``
        (the characters generated, as they come, and the prefix's unknown characters),
        generated together with the other generations in flight. The prefix and settings are
        checked before this returns."""
        prefix_ids, unknown = checked_prefix(self.vocab, prefix, settings)
        generation = Generation(prefix_ids, settings)
        self._submit(generation)
        return generation, unknown

    @property
    def rows(self) -> int:
        return self._sampler.rows

    def _join(self, generations: list[Generation]) -> None:
        before = self._sampler.rows
        for generation in generations:
            if generation.closed:
                generation.end()
            else:
                self._sampler.add(generation, generation.prefix_ids, generation.sampling)
        joined = rows_of(self._zero_row, np.zeros(self._sampler.rows - before, np.int64))
        self._states = concatenate_rows([self._states, joined])
        self._hand_out()

    def _step(self) -> None:
        closed = {generation for generation in self._sampler.labels if generation.closed}
        if closed:
            self._states = rows_of(self._states, self._sampler.drop(closed))
            for generation in closed:
                generation.end()  # wakes a reader still waiting
        if not self._sampler.rows:
            return
        logits, states = self.step(self._sampler.tokens, self._states)
        self._states = rows_of(states, self._sampler.advance(logits))
        self._hand_out()

    def _hand_out(self) -> None:
        """Give each generation the characters sampled for it, and tell those that ended."""
        for generation, token in self._sampler.take_sampled():
            generation.hear(self.vocab.decode([token]))
        for generation in self._sampler.take_ended():
            generation.end()

    def _requests(self) -> list[Generation]:
        return self._sampler.labels

    def _reset(self) -> None:
        self._sampler = Sampler()
        self._states = rows_of(self._zero_row, np.zeros(0, np.int64))
