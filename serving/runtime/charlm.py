"""Character language models: generation, shared by the Keras path
(``python -m keras_rnn.generate``) and the onnxruntime path (``serving.predict``). Both run
the loop of ``serving.runtime.decoding`` over their own step function, so the same seed gives
the same text. The vocabulary is in ``serving.runtime.vocab``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

import numpy as np

from serving.errors import UserError
from serving.runtime.decoding import MAX_GENERATED, Sampling, Step, stream_ids
from serving.runtime.graph import ExportedGraph
from serving.runtime.vocab import Vocabulary

GENERATION_DEFAULTS = asdict(Sampling())  # length, temperature, top_k, seed


def check_generation(prefix: str, settings: Sampling, vocab_size: int) -> None:
    """Raise UserError, naming the flag, for an empty or long prefix or a bad setting."""
    if not prefix:
        raise UserError("--prefix is empty: give at least one character to start from")
    if len(prefix) > MAX_GENERATED:
        raise UserError(f"--prefix has {len(prefix)} characters: at most {MAX_GENERATED}")
    settings.check(vocab_size)


def checked_prefix(
    vocab: Vocabulary, prefix: str, settings: Sampling
) -> tuple[np.ndarray, list[str]]:
    """The ids of ``prefix`` and its unknown characters, once the prefix and settings pass
    ``check_generation``."""
    check_generation(prefix, settings, vocab.size)
    return vocab.encode(prefix)


def onnx_step(graph: ExportedGraph) -> Step:
    """The exported ``lm_step`` graph as the generation loop calls it."""
    names = graph.runtime["states"]

    def run(token: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        outputs = graph(character=token, **dict(zip(names, states, strict=True)))
        return outputs["logits"], [outputs[f"next_{name}"] for name in names]

    return run


def onnx_generate(
    graph: ExportedGraph, vocab: Vocabulary, prefix: str, settings: Sampling
) -> tuple[str, list[str]]:
    """Text generated after ``prefix`` by onnxruntime, and the prefix's unknown characters."""
    pieces, unknown = onnx_stream(graph, vocab, prefix, settings)
    return "".join(pieces), unknown


def onnx_stream(
    graph: ExportedGraph, vocab: Vocabulary, prefix: str, settings: Sampling
) -> tuple[Iterator[str], list[str]]:
    """``stream_text`` with the exported ``lm_step`` graph."""
    states = len(graph.runtime["states"])
    return stream_text(onnx_step(graph), states, graph.runtime["units"], vocab, prefix, settings)


def generate_text(
    step: Step, states: int, units: int, vocab: Vocabulary, prefix: str, settings: Sampling
) -> tuple[str, list[str]]:
    """Text that ``step`` (with ``states`` state tensors of ``units``, starting at zeros)
    generates after ``prefix``, and the prefix's unknown characters."""
    pieces, unknown = stream_text(step, states, units, vocab, prefix, settings)
    return "".join(pieces), unknown


def stream_text(
    step: Step, states: int, units: int, vocab: Vocabulary, prefix: str, settings: Sampling
) -> tuple[Iterator[str], list[str]]:
    """``generate_text``'s characters one at a time as each is sampled, and the prefix's
    unknown characters. The prefix and settings are checked before this returns."""
    prefix_ids, unknown = checked_prefix(vocab, prefix, settings)
    zeros = [np.zeros((1, units), np.float32) for _ in range(states)]
    ids = stream_ids(step, zeros, prefix_ids, settings)
    return (vocab.decode([token]) for token in ids), unknown
