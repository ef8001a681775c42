"""Continuous batching of translations: the texts of concurrent requests decode together, one
``decoder_step`` call per step for every row of every request. A request that arrives while
others decode joins at the next step (its sources encoded together with the other newcomers',
one ``encoder`` call), and its rows leave the batch as they end, greedy and beam alike.

The bookkeeping is ``serving.runtime``'s, which ``serving.predict`` runs too: the
``Translator``'s sources, encoder and step, one ``GreedySearch`` whose rows are every greedy
text in flight, and a ``BeamSearch`` per beam-searched text (its beams are its rows). Every
answer equals the answer to the same request sent alone: each source is padded to the
model's length limit whatever its batchmates (``Translator.source_batch``), and the encoder
and the step compute each row from that row alone (measured bitwise here, batches of 1 to 64).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from serving.runtime.decoding import (
    Beam,
    BeamSearch,
    GreedySearch,
    concatenate_rows,
    log_softmax,
    rows_of,
)
from serving.runtime.translate import DecoderState, Translation, Translator

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


@dataclass(eq=False)
class _Beam:
    """A beam-searched text in flight: its request, its place there, and its search."""

    request: _Request
    text: int
    search: BeamSearch


class ContinuousTranslator:
    """Decodes the texts of every ``translate`` call together, in a thread of its own.

    Requests join in arrival order while their rows fit beside the rows decoding, up to
    ``max_rows`` (a request larger than that decodes once nothing else does)."""

    def __init__(self, translator: Translator, max_rows: int, name: str = "translate"):
        self.translator, self.max_rows = translator, max_rows
        self._queue: list[_Request] = []
        self._changed = threading.Condition()  # guards the queue and _closed
        self._closed = False
        self._greedy = GreedySearch(translator.end_id)
        self._greedy_states: DecoderState | None = None  # the greedy rows', once any joined
        self._beams: list[_Beam] = []
        self._beam_states: list[DecoderState] = []
        self._thread = threading.Thread(target=self._serve, name=f"decode-{name}", daemon=True)
        self._thread.start()

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
        with self._changed:
            if self._closed:
                raise RuntimeError("the translations' decoder is closed")
            self._queue.append(request)
            self._changed.notify()
        for row, text_tokens, text_unknown, (output, log_probability) in zip(
            todo, tokens, unknown, request.future.result(), strict=True
        ):
            penalty = settings.length_penalty if settings else 1.0
            results[row] = translator.finish(
                text_tokens, output, log_probability, text_unknown, penalty
            )
        return results

    @property
    def waiting(self) -> int:
        """How many requests wait to join."""
        with self._changed:
            return len(self._queue)

    def close(self) -> None:
        """Decode what is queued and in flight, then stop the thread."""
        with self._changed:
            self._closed = True
            self._changed.notify()
        self._thread.join()

    @property
    def _rows(self) -> int:
        return self._greedy.rows + sum(beam.search.rows for beam in self._beams)

    def _serve(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._rows:
                    if self._closed:
                        return
                    self._changed.wait()
                joining = self._joining()
            try:
                if joining:
                    self._join(joining)
                if self._rows:
                    self._step()
            except Exception as error:  # a fault of the model: every request in flight fails
                self._fail([*joining, *self._requests()], error)

    def _joining(self) -> list[_Request]:
        """The queued requests that fit beside the rows decoding, taken from the queue."""
        rows, joining = self._rows, []
        while self._queue and (not rows or rows + self._queue[0].rows <= self.max_rows):
            request = self._queue.pop(0)
            joining.append(request)
            rows += request.rows
        return joining

    def _join(self, requests: list[_Request]) -> None:
        """Encode the sources of ``requests`` in one call and add their rows."""
        states = self.translator.encode(np.concatenate([request.ids for request in requests]))
        start = 0
        greedy_rows = []
        for request in requests:
            rows = np.arange(start, start + len(request.ids))
            start += len(request.ids)
            if request.beam is None:
                self.translator.add_greedy(self._greedy, [(request, t) for t in range(len(rows))])
                greedy_rows.append(rows)
                continue
            for text, row in enumerate(rows):
                search = BeamSearch(request.beam, self.translator.start_id)
                self._beams.append(_Beam(request, text, search))
                self._beam_states.append(rows_of(states, np.array([row])))
        if greedy_rows:
            joined = rows_of(states, np.concatenate(greedy_rows))
            before = [] if self._greedy_states is None else [self._greedy_states]
            self._greedy_states = concatenate_rows([*before, joined])

    def _step(self) -> None:
        """One step of every row; the rows ended leave, and their requests hear."""
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
        """The requests with rows decoding."""
        greedy = {label[0] for label in self._greedy.labels}
        return [*greedy, *(beam.request for beam in self._beams)]

    def _fail(self, requests: list[_Request], error: Exception) -> None:
        """Fail ``requests`` with ``error`` and drop every row decoding."""
        for request in dict.fromkeys(requests):
            if not request.future.done():
                request.future.set_exception(error)
        self._greedy = GreedySearch(self.translator.end_id)
        self._greedy_states, self._beams, self._beam_states = None, [], []
