"""Decoding with the Keras models and checking the exports: the Keras ``Translator``, the
scores, attention plots, and the decoding parity of an export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import sacrebleu
import tensorflow as tf

from keras_rnn import plots
from keras_rnn.graphs import compiled
from keras_rnn.tasks.translate import Config
from keras_rnn.tasks.translate import model as network
from keras_rnn.tasks.translate.data import read_splits
from serving.progress import Progress
from serving.runtime.graph import load_graph
from serving.runtime.text import tokenize
from serving.runtime.translate import (
    Translation,
    Translator,
    decoding_steps,
    onnx_translator,
    vocab_translator,
)

# How far onnxruntime's log-probability of a translation, per id, may be from Keras's: a
# log-softmax moves at most twice as far as its logits, which decoder_step's parity holds
# within 1e-4.
SCORE_ATOL = 2e-4


def keras_translator(model: keras.Model, config: Config, vocab_dir: Path) -> Translator:
    """A ``Translator`` that steps through the Keras model (as ``tf.function``s), with the
    vocabularies in ``vocab_dir``."""
    encode, step = decoding_steps(
        compiled(network.encoder_model(model, config)),
        compiled(network.decoder_step_model(model, config)),
        network.state_names(config),
    )
    return vocab_translator(vocab_dir, encode, step)


def scores(translations: list[Translation], references: list[str], mode: str) -> dict[str, float]:
    """Exact match, token accuracy (reference tokens matched at their position), and corpus
    BLEU (over the task's tokens, joined by spaces) and chrF (over the texts), by sacrebleu."""
    reference_tokens = [tokenize(text, mode) for text in references]
    exact = np.mean([t.tokens == r for t, r in zip(translations, reference_tokens, strict=True)])
    matched = sum(
        sum(a == b for a, b in zip(t.tokens, r, strict=False))
        for t, r in zip(translations, reference_tokens, strict=True)
    )
    bleu = sacrebleu.corpus_bleu(
        [" ".join(t.tokens) for t in translations],
        [[" ".join(r) for r in reference_tokens]],
        tokenize="none",
    )
    chrf = sacrebleu.corpus_chrf([t.text for t in translations], [references])
    return {
        "exact_match": float(exact),
        "token_accuracy": matched / max(1, sum(map(len, reference_tokens))),
        "bleu": float(bleu.score),
        "chrf": float(chrf.score),
    }


def plot_attention(translation: Translation, path: Path) -> None:
    """Attention weights: source tokens across, output tokens down. Characters that no
    installed font draws are labelled U+XXXX (matplotlib ships no CJK font)."""
    weights = translation.attention
    size = (max(4, 0.3 * weights.shape[1] + 2), max(3, 0.3 * weights.shape[0] + 1.5))
    with plots.plt.rc_context({"font.family": list(plots.text_fonts()[0])}):
        figure, axes = plots.plt.subplots(figsize=size)
        if weights.size:
            axes.imshow(weights, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        else:  # nothing was written (the end token first) or nothing read
            axes.text(0.5, 0.5, "no attention: empty source or translation", ha="center")
        axes.set_xticks(range(weights.shape[1]), map(plots.label, translation.source_tokens))
        axes.set_yticks(range(weights.shape[0]), map(plots.label, translation.tokens))
        axes.tick_params(axis="x", rotation=90)
        axes.set_xlabel("source")
        axes.set_ylabel("output")
        axes.set_title(plots.label(translation.text))
        plots.save_figure(figure, path)


def check_decoding(model: keras.Model, config: Config, export_dir: Path) -> dict[str, Any]:
    """The whole test split translated greedily and with the beam by Keras and by the
    exported ``encoder`` and ``decoder_step`` graphs, and greedily by the SavedModel's
    ``translate`` signature: the same texts (and, through the step graphs, the same scores
    within ``SCORE_ATOL``)."""
    sources = [source for source, _ in read_splits(config)[0]["test"]]
    keras_side = keras_translator(model, config, export_dir / "vocab")
    onnx_side = onnx_translator(load_graph(export_dir, "decoder_step"))
    beam = (config.beam_width or 4, config.length_penalty)  # checked even if not scored
    greedy = keras_side.greedy(sources, "Keras greedy")
    serve = tf.saved_model.load(str(export_dir / "savedmodel" / "translate" / "1"))
    served = []
    with Progress("SavedModel translate, greedy", len(sources)) as progress:
        for first in range(0, len(sources), 256):
            batch = tf.constant(sources[first : first + 256])
            texts = serve.signatures["serving_default"](text=batch)["translation"].numpy()
            served += [Translation([], [], text.decode("utf-8")) for text in texts]
            progress.advance(len(texts))
    decodings = {
        "greedy onnx": compared(greedy, onnx_side.greedy(sources, "onnxruntime greedy")),
        "beam onnx": compared(
            keras_side.beam(sources, *beam, f"Keras beam of {beam[0]}"),
            onnx_side.beam(sources, *beam, f"onnxruntime beam of {beam[0]}"),
            length_penalty=beam[1],
        ),
        "greedy savedmodel translate": compared(greedy, served),
    }
    return {
        "ok": all(
            d["different"] == 0 and d.get("largest_score_difference", 0) <= SCORE_ATOL
            for d in decodings.values()
        ),
        **decodings,
        "summary": ", ".join(
            f"{name} {len(sources) - d['different']}/{len(sources)}"
            for name, d in decodings.items()
        )
        + f" test translations identical to Keras's, {score_note(decodings)}",
    }


def score_note(decodings: dict[str, dict[str, Any]]) -> str:
    """Whether onnxruntime's scores were within ``SCORE_ATOL`` of Keras's, for the summary."""
    largest = max(d.get("largest_score_difference", 0) for d in decodings.values())
    if largest <= SCORE_ATOL:
        return f"scores within {SCORE_ATOL:.0e}"
    return f"scores up to {largest:.1e} apart (more than {SCORE_ATOL:.0e})"


def compared(
    expected: list[Translation], actual: list[Translation], length_penalty: float = 1.0
) -> dict[str, Any]:
    """How many texts of ``actual`` differ from ``expected``, the first few indices, and
    where ``actual`` has scores, the largest difference between the two scores of a text per
    id (a score divides the log-probability by count ** ``length_penalty``; each id's
    log-softmax may move by up to ``SCORE_ATOL``, so the sum by up to count times that)."""
    differ = [i for i, (a, b) in enumerate(zip(expected, actual, strict=True)) if a.text != b.text]
    report = {"sources": len(expected), "different": len(differ), "first_different": differ[:5]}
    if all(t.score is not None for t in actual):
        report["largest_score_difference"] = max(
            (
                abs(a.score - b.score) * (len(a.tokens) + 1) ** (length_penalty - 1)
                for a, b in zip(expected, actual, strict=True)
            ),
            default=0.0,
        )
    return report
