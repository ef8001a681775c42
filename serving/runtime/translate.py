"""Translation by any encoder and decoder step (numpy only): tokenize, look up ids, decode
greedy or with a beam, and detokenize. The Keras models (training, evaluation,
``python -m keras_rnn.translate``) and the exported ONNX graphs (``serving.predict``) each
pass their own two functions, so both decode with the same loops
(``serving.runtime.decoding``).

Inputs: an empty text (no tokens) translates to an empty text without running the model; a
text longer than the model's limit (the longest text of its data) is refused; tokens outside
the source vocabulary are read as the unknown id and listed in each translation
(``Translation.unknown``).

Each translation comes with its score, the length-normalised log-probability the decoder
ranked by (``Translation.score``), and, where the target vocabulary says its texts are ISO
dates (the dates task), whether the output is a valid date (``Translation.valid_date``).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, NotRequired, TypedDict

import numpy as np

from serving.errors import UserError
from serving.progress import Progress
from serving.runtime.decoding import (
    Beam,
    BeamSearch,
    GreedySearch,
    greedy,
    normalised,
    run_search,
)
from serving.runtime.graph import ExportedGraph, load_graph
from serving.runtime.text import detokenize, tokenize
from serving.runtime.vocab import END, START, TokenVocabulary


class DecoderState(TypedDict):
    """What the decoder carries from step to step, by the ``decoder_step`` graph's input
    names (batch first): its recurrent states, which each step replaces, and what every step
    reads unchanged: the encoder's outputs, the keys attention scores against, and the source
    ids (whose padding attention masks)."""

    state_h: np.ndarray
    state_c: NotRequired[np.ndarray]  # an LSTM's
    values: np.ndarray
    keys: np.ndarray
    source: np.ndarray


# encode(source ids (batch, length)) -> the state before the first step.
Encode = Callable[[np.ndarray], DecoderState]
# step(previous ids (batch, 1), state) -> (logits (batch, vocab), the next state, attention
# weights over the source (batch, source length)).
AttendingStep = Callable[[np.ndarray, DecoderState], tuple[np.ndarray, DecoderState, np.ndarray]]


ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # what the dates task writes


@dataclass
class Translation:
    """One source's translation: its tokens and text, the source tokens read as unknown,
    (from ``Translator.attend``) the attention weights, one row per output token, its score
    (the log-probability of its ids, end id included, divided by their count ** the length
    penalty: 1 for greedy decoding; 0 for an empty source; None where the decoder gave none)
    and, for targets that are ISO dates, whether the text is a valid date (else None)."""

    source_tokens: list[str]
    tokens: list[str]
    text: str
    unknown: list[str] = field(default_factory=list)
    attention: np.ndarray | None = None
    score: float | None = None
    valid_date: bool | None = None


def is_iso_date(text: str) -> bool:
    """Whether ``text`` is a date of the calendar written YYYY-MM-DD (not 2021-02-31)."""
    if not ISO_DATE.fullmatch(text):
        return False
    try:
        datetime.date.fromisoformat(text)
    except ValueError:  # month 00, day 31 of February, year 0000, ...
        return False
    return True


@dataclass
class Translator:
    """Translate texts with ``encode`` and ``step`` (``Encode``, ``AttendingStep``).

    ``tokenize`` and ``detokenize`` are the task's text functions; ``source_ids`` and
    ``target_tokens`` look ids up in the vocabularies (``source_ids(tokens) -> (ids, unknown
    tokens)``); ``start_id`` and ``end_id`` are the target's; ``max_length`` bounds both the
    source (longer ones are refused) and the output; ``iso_dates``: the outputs should be
    ISO dates (each translation says whether it is one).
    """

    encode: Encode
    step: AttendingStep
    tokenize: Callable[[str], list[str]]
    detokenize: Callable[[list[str]], str]
    source_ids: Callable[[list[str]], tuple[np.ndarray, list[str]]]
    target_tokens: Callable[[Sequence[int]], list[str]]
    start_id: int
    end_id: int
    max_length: int
    batch_size: int = 256
    iso_dates: bool = False

    def source_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, list[list[str]], list]:
        """Source ids padded on the right to ``max_length`` steps, the tokens, and the unknown
        tokens of each text; a source longer than ``max_length`` tokens is refused. Every
        source has that one width, so that a text's translation never depends on the texts
        decoded beside it (attention over a wider padding may round differently)."""
        tokens = [self.tokenize(text) for text in texts]
        for text, row in zip(texts, tokens, strict=True):
            if len(row) > self.max_length:
                raise UserError(
                    f"source of {len(row)} tokens is longer than the model's limit of "
                    f"{self.max_length}: {text[:40]!r}..."
                )
        encoded = [self.source_ids(row) for row in tokens]
        ids = np.zeros((len(texts), self.max_length), np.int32)
        for row, (row_ids, _) in enumerate(encoded):
            ids[row, : len(row_ids)] = row_ids
        return ids, tokens, [unknown for _, unknown in encoded]

    def plain_step(
        self, tokens: np.ndarray, state: DecoderState
    ) -> tuple[np.ndarray, DecoderState]:
        """``step`` without its attention weights (a ``decoding.Step``)."""
        logits, state, _ = self.step(tokens, state)
        return logits, state

    def add_greedy(self, search: GreedySearch, labels: Sequence[Hashable]) -> None:
        """Add to ``search`` a row per label, decoding from the start id to the end id or
        ``max_length`` ids."""
        search.add(labels, [self.start_id] * len(labels), self.max_length)

    def beam_settings(self, width: int, length_penalty: float) -> Beam:
        """The beam search of ``width`` beams ranked with ``length_penalty``, once checked."""
        settings = Beam(self.max_length, width, self.end_id, length_penalty)
        settings.check()
        return settings

    def finish(
        self,
        source_tokens: list[str],
        ids: list[int],
        log_probability: float,
        unknown: list[str],
        penalty: float = 1.0,
    ) -> Translation:
        """The ``Translation`` of decoded ``ids`` (the end id, if there, dropped), scored with
        ``penalty``."""
        score = normalised(log_probability, len(ids), penalty)
        if ids and ids[-1] == self.end_id:
            ids = ids[:-1]
        tokens = self.target_tokens(ids)
        return self.checked(
            Translation(source_tokens, tokens, self.detokenize(tokens), unknown, score=score)
        )

    def checked(self, translation: Translation) -> Translation:
        """``translation`` with ``valid_date`` set where the outputs should be ISO dates."""
        if self.iso_dates:
            translation.valid_date = is_iso_date(translation.text)
        return translation

    def greedy(self, texts: Sequence[str], label: str = "") -> list[Translation]:
        """Greedy translations, in batches of ``batch_size`` texts (of any lengths); with a
        ``label``, the texts done are shown on a terminal (``serving.progress``)."""
        results: list[Translation | None] = [None] * len(texts)
        todo = self.translate_empty(texts, results)
        with Progress(label, len(todo)) as progress:
            for first in range(0, len(todo), self.batch_size):
                rows = todo[first : first + self.batch_size]
                ids, tokens, unknown = self.source_batch([texts[row] for row in rows])
                search = GreedySearch(self.end_id)
                self.add_greedy(search, range(len(rows)))
                run_search(self.plain_step, self.encode(ids), search)
                for index, (output, log_probability) in search.take_ended():
                    results[rows[index]] = self.finish(
                        tokens[index], output, log_probability, unknown[index]
                    )
                progress.advance(len(rows))
        return results

    def beam(
        self, texts: Sequence[str], width: int, length_penalty: float, label: str = ""
    ) -> list[Translation]:
        """Beam-search translations, one text at a time (the beams are the batch); with a
        ``label``, the texts done are shown on a terminal (``serving.progress``)."""
        settings = self.beam_settings(width, length_penalty)
        results: list[Translation | None] = [None] * len(texts)
        todo = self.translate_empty(texts, results)
        with Progress(label, len(todo)) as progress:
            for row in todo:
                ids, tokens, unknown = self.source_batch([texts[row]])
                search = BeamSearch(settings, self.start_id)
                run_search(self.plain_step, self.encode(ids), search)
                (best, log_probability), *_ = search.results()
                results[row] = self.finish(
                    tokens[0], best, log_probability, unknown[0], length_penalty
                )
                progress.advance()
        return results

    def translate_empty(self, texts: Sequence[str], results: list) -> list[int]:
        """Fill in the translations of texts without tokens (empty, score 0); the other
        rows."""
        rows = []
        for row, text in enumerate(texts):
            if self.tokenize(text):
                rows.append(row)
            else:
                results[row] = self.checked(Translation([], [], "", score=0.0))
        return rows

    def attend(self, text: str) -> Translation:
        """The greedy translation of one text with its attention weights (output tokens by
        source tokens)."""
        ids, tokens, unknown = self.source_batch([text])
        weights: list[np.ndarray] = []

        def recording_step(previous: np.ndarray, state: DecoderState):
            logits, state, attention = self.step(previous, state)
            weights.append(np.asarray(attention)[0, : len(tokens[0])])
            return logits, state

        ((row, log_probability),) = greedy(
            recording_step, self.encode(ids), [self.start_id], self.max_length, self.end_id
        )
        translation = self.finish(tokens[0], row, log_probability, unknown[0])
        translation.attention = np.array(weights[: len(translation.tokens)]).reshape(
            len(translation.tokens), len(tokens[0])
        )
        return translation


class Vocabularies(NamedTuple):
    """What training wrote in a run's ``vocab/``: both vocabularies, the tokenization mode,
    the length limit, and whether the targets are ISO dates."""

    source: TokenVocabulary
    target: TokenVocabulary
    mode: str
    max_length: int
    iso_dates: bool


def read_vocabularies(vocab_dir: Path) -> Vocabularies:
    """The ``Vocabularies`` in ``vocab_dir`` (``source.json``, ``target.json``, whose extra
    keys give the mode, the limit and the kind of texts); a ``UserError`` if they lack them."""
    target_path = vocab_dir / "target.json"
    target = TokenVocabulary.load(target_path)
    facts = json.loads(target_path.read_text(encoding="utf-8"))
    if not isinstance(facts.get("mode"), str) or not isinstance(facts.get("max_length"), int):
        raise UserError(f"{target_path} gives no tokenization mode and length limit")
    return Vocabularies(
        source=TokenVocabulary.load(vocab_dir / "source.json"),
        target=target,
        mode=facts["mode"],
        max_length=facts["max_length"],
        iso_dates=facts.get("texts") == "iso_date",
    )


def vocab_translator(vocab_dir: Path, encode: Encode, step: AttendingStep) -> Translator:
    """A ``Translator`` over ``encode`` and ``step`` with the ``Vocabularies`` that training
    wrote in ``vocab_dir``, checking dates where the targets are ISO dates."""
    vocabularies = read_vocabularies(vocab_dir)
    mode = vocabularies.mode
    return Translator(
        encode=encode,
        step=step,
        tokenize=lambda text: tokenize(text, mode),
        detokenize=lambda tokens: detokenize(tokens, mode),
        source_ids=vocabularies.source.encode,
        target_tokens=vocabularies.target.decode,
        start_id=START,
        end_id=END,
        max_length=vocabularies.max_length,
        iso_dates=vocabularies.iso_dates,
    )


def onnx_translator(decoder_step: ExportedGraph, threads: int | None = None) -> Translator:
    """A ``Translator`` over the exported ``encoder`` and ``decoder_step`` graphs, with the
    vocabularies exported beside them."""
    return graph_translator(load_graph(decoder_step.export_dir, "encoder", threads), decoder_step)


def graph_translator(encoder: Any, decoder_step: Any) -> Translator:
    """A ``Translator`` over ``encoder`` and ``decoder_step`` graphs: anything with
    ``ExportedGraph``'s ``runtime`` and ``export_dir`` that is called with keyword arrays (the
    onnxruntime graphs, or a server's through ``serving.clients.RemoteGraph``)."""
    encode, step = decoding_steps(encoder, decoder_step, decoder_step.runtime["states"])
    vocab_dir = (decoder_step.export_dir / decoder_step.runtime["target_vocab"]).parent
    return vocab_translator(vocab_dir, encode, step)


def decoding_steps(
    encoder: Callable[..., dict[str, np.ndarray]],
    decoder_step: Callable[..., dict[str, np.ndarray]],
    recurrent: Sequence[str],
) -> tuple[Encode, AttendingStep]:
    """``Encode`` and ``AttendingStep`` over an ``encoder`` and a ``decoder_step`` that take
    arrays as keyword arguments and return arrays by name; ``recurrent`` names the decoder's
    recurrent states (``state_h``, and ``state_c`` for an LSTM)."""

    def encode(source: np.ndarray) -> DecoderState:
        outputs = encoder(source=source)
        return DecoderState(
            **{name: outputs[name] for name in recurrent},
            values=outputs["values"],
            keys=outputs["keys"],
            source=source,
        )

    def step(previous: np.ndarray, state: DecoderState):
        outputs = decoder_step(token=previous, **state)
        following = state | {name: outputs[f"next_{name}"] for name in recurrent}
        return outputs["logits"], following, outputs["attention"]

    return encode, step


def check_beam_flags(beam: int, length_penalty: float | None) -> None:
    """Refuse a length penalty without beam search (it would be ignored)."""
    if length_penalty is not None and beam < 2:
        raise UserError("--length-penalty applies to beam search: add --beam N (N >= 2)")


def translate_texts(
    translator: Translator, texts: Sequence[str], beam: int, length_penalty: float | None
) -> list[Translation]:
    """Greedy translations (``beam`` 0 or 1) or beam-search ones (ranked with
    ``length_penalty``, 1 when None; refused without a beam)."""
    check_beam_flags(beam, length_penalty)
    if beam > 1:
        penalty = 1.0 if length_penalty is None else length_penalty
        return translator.beam(texts, beam, penalty)
    return translator.greedy(texts)


def unknown_tokens(translations: Sequence[Translation]) -> list[str]:
    """The source tokens outside the vocabulary in any of ``translations``, sorted."""
    return sorted({token for t in translations for token in t.unknown})


def as_json(texts: Sequence[str], translations: Sequence[Translation]) -> dict:
    """What ``--json`` prints: each text with its translation, its unknown tokens, its score
    and, for ISO-date targets, whether the translation is a valid date."""
    return {
        "translations": [
            {"source": text, "translation": t.text, "unknown": t.unknown, "score": t.score}
            | ({} if t.valid_date is None else {"valid_date": t.valid_date})
            for text, t in zip(texts, translations, strict=True)
        ]
    }
