"""The translate task's contract (``keras_rnn.tasks.Task``); the package docstring describes
the task."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from keras_rnn.graphs import ExportGraph
from keras_rnn.runs import RunDir
from keras_rnn.tasks import no_callbacks, no_log_callbacks
from keras_rnn.tasks.translate import Config
from keras_rnn.tasks.translate import model as network
from keras_rnn.tasks.translate.data import Datasets, make_datasets, read_splits
from keras_rnn.tasks.translate.decoding import (
    check_decoding,
    keras_translator,
    plot_attention,
    scores,
)
from keras_rnn.tasks.translate.text_graph import TranslateText, translate_model
from serving.runtime.translate import read_vocabularies

__all__ = [  # the contract (keras_rnn.tasks.Task); the rest is in data, model, decoding
    "Config", "build_model", "callbacks", "check_decoding", "compile_args", "evaluate",
    "export_graphs", "format_metrics", "log_callbacks", "make_datasets",
]  # fmt: skip

PLOTTED = 3  # test examples whose attention is drawn into plots/


# The task contract's training hooks: this task adds no callbacks.
log_callbacks = no_log_callbacks
callbacks = no_callbacks


def build_model(config: Config, data: Datasets) -> keras.Model:
    return network.build_model(config, data.source_vocab.size, data.target_vocab.size)


def compile_args(config: Config, data: Datasets) -> dict[str, Any]:
    # Padding targets (id 0) count for nothing: ignore_class, not the mask, which the
    # Bahdanau decoder does not carry.
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    return {"loss": {"logits": loss}}


def evaluate(
    model: keras.Model, untrained: keras.Model, data: Datasets, config: Config, run: RunDir
) -> dict[str, Any]:
    """Greedy and beam-search scores on the test split, the untrained model's greedy exact
    match, greedy exact match on the held-out formats (the dates), a few examples, and
    attention plots of the first test examples."""
    sources = [s for s, _ in data.splits["test"]]
    references = [t for _, t in data.splits["test"]]
    translator = keras_translator(model, config, run.path / "vocab")  # the trainer wrote it
    print(f"decoding {len(sources):,} test sources: greedy", flush=True)  # progress
    greedy = translator.greedy(sources, "greedy")
    decodings = {"greedy": greedy}
    if config.beam_width:
        print(f"decoding {len(sources):,} test sources: beam of {config.beam_width}", flush=True)
        decodings["beam"] = translator.beam(
            sources, config.beam_width, config.length_penalty, f"beam of {config.beam_width}"
        )
    untrained_translator = keras_translator(untrained, config, run.path / "vocab")
    baseline = untrained_translator.greedy(sources, "untrained model, greedy")
    metrics: dict[str, Any] = {"test_pairs": len(sources)}
    for name, translations in decodings.items():
        metrics |= {
            f"{name}_{k}": v for k, v in scores(translations, references, data.mode).items()
        }
    metrics["untrained_greedy_exact_match"] = scores(baseline, references, data.mode)["exact_match"]
    if "heldout_formats" in data.splits:  # the dates: the test dates in formats never trained on
        heldout = data.splits["heldout_formats"]
        print(f"decoding {len(heldout):,} held-out-format sources: greedy", flush=True)
        outputs = translator.greedy([source for source, _ in heldout], "held-out formats, greedy")
        metrics["heldout_formats_pairs"] = len(heldout)
        metrics["greedy_exact_match_heldout_formats"] = scores(
            outputs, [target for _, target in heldout], data.mode
        )["exact_match"]
    metrics["examples"] = [
        {"source": sources[i], "reference": references[i]}
        | {name: translations[i].text for name, translations in decodings.items()}
        for i in range(min(5, len(sources)))
    ]
    if config.attention != "none":
        for index, text in enumerate(sources[:PLOTTED]):
            plot_attention(translator.attend(text), run.plots / f"attention_{index}.png")
    return metrics


def format_metrics(metrics: dict[str, Any], config: Config) -> str:
    decodings = ["greedy"] + (["beam"] if config.beam_width else [])
    rows = [
        f"| {name} | " + " | ".join(f"{metrics[f'{d}_{name}']:.4f}" for d in decodings) + " |"
        for name in ("exact_match", "token_accuracy", "bleu", "chrf")
    ]
    examples = [
        f"  {e['source']!r} -> {e['greedy']!r} (reference {e['reference']!r})"
        for e in metrics["examples"][:3]
    ]
    header = "| greedy |" + (f" beam {config.beam_width} |" if config.beam_width else "")
    heldout = []
    if "heldout_formats_pairs" in metrics:
        heldout.append(
            f"held-out formats ({metrics['heldout_formats_pairs']} test dates) greedy exact "
            f"match: {metrics['greedy_exact_match_heldout_formats']:.4f}"
        )
    return "\n".join(
        [
            f"| test ({metrics['test_pairs']} pairs) {header}",
            "|---|" + "---:|" * len(decodings),
            *rows,
            "",
            f"untrained greedy exact match: {metrics['untrained_greedy_exact_match']:.4f}",
            *heldout,
            "examples:",
            *examples,
        ]
    )


def export_graphs(model: keras.Model, config: Config, run: RunDir) -> list[ExportGraph]:
    """``translate`` (strings in and out, greedy, SavedModel only: what TF Serving serves),
    ``encoder`` (source ids -> values, keys, initial states) and ``decoder_step`` (one step:
    previous id, states, values, keys, source ids -> logits, new states, attention)."""
    source_size = model.get_layer("source_embedding").input_dim
    target_size = model.get_layer("target_embedding").input_dim
    encoder, step = network.encoder_model(model, config), network.decoder_step_model(model, config)
    names = network.state_names(config)
    width = 2 * config.units
    key_width = step.input["keys"].shape[-1]
    runtime = {
        "task": "translate",
        "source_vocab": "vocab/source.json",
        "target_vocab": "vocab/target.json",
        "states": names,
        "attention": config.attention,
    }

    def sources(batch: int, length: int, rng: np.random.Generator) -> np.ndarray:
        ids = rng.integers(4, source_size, size=(batch, length), dtype=np.int32)
        lengths = rng.integers(1, length + 1, size=batch)
        ids[np.arange(length)[None, :] >= lengths[:, None]] = 0
        return ids

    def encoder_sample(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"source": sources(batch, length, rng)}

    def step_sample(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        normal = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
        return {
            "token": rng.integers(4, target_size, size=(batch, 1), dtype=np.int32),
            "source": sources(batch, length, rng),
            "values": normal(batch, length, width),
            "keys": normal(batch, length, key_width),
        } | {name: normal(batch, width) for name in names}

    vocabularies = read_vocabularies(run.path / "vocab")
    texts = [source for source, _ in read_splits(config)[0]["test"]]
    translate = TranslateText(
        encoder,
        step,
        vocabularies.source,
        vocabularies.target,
        vocabularies.mode,
        vocabularies.max_length,
        names,
    )

    def text_sample(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        chosen = [texts[i] for i in rng.choice(len(texts), size=batch, replace=False)]
        if batch > 2:  # an empty text, and characters the vocabulary lacks
            chosen[1], chosen[2] = "", "\u2603" + chosen[2]
        return {"text": np.array(chosen, dtype=object)}

    return [
        ExportGraph(
            name="translate",
            model=translate_model(translate),
            inputs={"text": ((None,), "string")},
            outputs=["translation"],
            sample=text_sample,
            lengths=(0,),
            runtime=runtime,
            formats=("savedmodel",),  # strings in: TF Serving's graph, not ONNX's
        ),
        ExportGraph(
            name="encoder",
            model=encoder,
            inputs={"source": ((None, None), "int32")},
            outputs=["values", "keys", *names],
            sample=encoder_sample,
            lengths=(7, 19),
            runtime=runtime,
            masked_input="source",
        ),
        ExportGraph(
            name="decoder_step",
            model=step,
            inputs={
                "token": ((None, 1), "int32"),
                "source": ((None, None), "int32"),
                "values": ((None, None, width), "float32"),
                "keys": ((None, None, key_width), "float32"),
            }
            | {name: ((None, width), "float32") for name in names},
            outputs=["logits", "attention", *(f"next_{n}" for n in names)],
            sample=step_sample,
            lengths=(7, 19),
            runtime=runtime | {"default": True},
            atol=1e-4,
        ),
    ]
