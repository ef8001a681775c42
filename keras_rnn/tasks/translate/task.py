"""The translate task's contract (``keras_rnn.tasks.Task``); the package docstring describes
the task."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import sacrebleu
import tensorflow as tf

from keras_rnn import plots
from keras_rnn.epochs import shuffled
from keras_rnn.errors import UserError
from keras_rnn.graphs import ExportGraph
from keras_rnn.runs import RunDir
from keras_rnn.tasks import no_callbacks, no_log_callbacks
from keras_rnn.tasks.translate import Config
from keras_rnn.tasks.translate.dates import date_splits
from keras_rnn.tasks.translate.model import (
    build_model as build_network,
)
from keras_rnn.tasks.translate.model import (
    decoder_step_model,
    encoder_model,
    state_names,
)
from keras_rnn.tasks.translate.numbers import number_splits
from keras_rnn.tasks.translate.pairs import COURSE_PREFIXES, read_pairs
from keras_rnn.tasks.translate.text_graph import TranslateText, translate_model
from keras_rnn.text import tokenize_batch
from serving.runtime.graph import load_graph
from serving.runtime.text import tokenize
from serving.runtime.translate import Translation, Translator, onnx_translator, vocab_translator
from serving.runtime.vocab import END, START, TokenVocabulary

PLOTTED = 3  # test examples whose attention is drawn into plots/


@dataclasses.dataclass
class Datasets:
    """The text pairs of each split, their vocabularies and the tf.data pipelines."""

    splits: dict[str, list[tuple[str, str]]]  # "train", "val", "test": (source, target)
    mode: str  # how texts are tokenized: "characters" or "words"
    source_vocab: TokenVocabulary
    target_vocab: TokenVocabulary
    max_length: int  # longest training source or target, in tokens, plus the end token
    source: dict[str, Any]
    train: tf.data.Dataset
    val: tf.data.Dataset

    @property
    def assets(self) -> dict[str, bytes]:
        """Both vocabularies, with what a runtime needs to tokenize and decode."""
        extra = {"mode": self.mode, "max_length": self.max_length}
        return {
            "vocab/source.json": self.source_vocab.to_json(**extra),
            "vocab/target.json": self.target_vocab.to_json(**extra),
        }


def tokens_mode(config: Config) -> str:
    """Characters for the embedded data, words (CJK characters one by one) for --pairs."""
    return "words" if config.pairs else "characters"


def read_splits(config: Config) -> tuple[dict[str, list[tuple[str, str]]], dict[str, Any]]:
    """The (source, target) pairs of each split and what config.json records of them."""
    if config.data == "dates" and not config.pairs:
        splits = date_splits(
            config.data_seed, config.train_pairs, config.val_pairs, config.test_pairs
        )
        return splits, {"data": "dates"}
    if not config.pairs:
        splits = number_splits(
            config.data_seed,
            config.train_pairs,
            config.val_pairs,
            config.test_pairs,
            language=config.language,
        )
        return splits, {"data": "numbers", "language": config.language}
    prefixes = tuple(p.strip() for p in config.prefixes.split(",") if p.strip())
    if prefixes == ("course",):
        prefixes = COURSE_PREFIXES
    pairs, dropped = read_pairs(
        config.pairs,
        max_words=config.max_words or None,
        prefixes=prefixes,
        reverse=config.reverse,
    )
    held_out = config.val_pairs + config.test_pairs
    if len(pairs) <= held_out:
        raise UserError(
            f"{config.pairs} gives {len(pairs)} pairs after its filters: --val-pairs "
            f"{config.val_pairs} plus --test-pairs {config.test_pairs} must leave some for training"
        )
    order = np.random.default_rng(config.data_seed).permutation(len(pairs))
    chosen = [pairs[i] for i in order]
    splits = {
        "test": chosen[: config.test_pairs],
        "val": chosen[config.test_pairs : held_out],
        "train": chosen[held_out:],
    }
    digest = hashlib.sha256(Path(config.pairs).read_bytes()).hexdigest()
    return splits, {"pairs": config.pairs, "sha256": digest, "kept": len(pairs), "dropped": dropped}


def make_datasets(config: Config) -> Datasets:
    splits, source = read_splits(config)
    mode = tokens_mode(config)
    tokens = {
        split: (
            tokenize_batch([s for s, _ in pairs], mode),
            tokenize_batch([t for _, t in pairs], mode),
        )
        for split, pairs in splits.items()
    }
    source_vocab = TokenVocabulary.build(tokens["train"][0])
    target_vocab = TokenVocabulary.build(tokens["train"][1])
    longest = max(len(row) for side in tokens["train"] for row in side) + 1
    if longest > config.max_output_length:
        raise UserError(
            f"the longest training text has {longest - 1} tokens: raise --max-output-length "
            f"{config.max_output_length} or filter the pairs (--max-words)"
        )
    source |= {
        "tokens": mode,
        "examples": {split: len(pairs) for split, pairs in splits.items()},
        "source_vocabulary": source_vocab.size,
        "target_vocabulary": target_vocab.size,
    }
    print(
        f"translate: {len(splits['train']):,} training pairs, vocabularies of "
        f"{source_vocab.size} and {target_vocab.size} {mode}",
        flush=True,
    )

    def pipeline(split: str, shuffle: bool) -> tf.data.Dataset:
        sources = [source_vocab.encode(row)[0] for row in tokens[split][0]]
        targets = [target_vocab.encode(row)[0] for row in tokens[split][1]]
        elements = (
            {
                "source": ragged(sources),
                "target_in": ragged([np.concatenate([[START], t]) for t in targets]),
            },
            {"logits": ragged([np.concatenate([t, [END]]) for t in targets])},
        )
        if shuffle:
            dataset = shuffled(elements, config.seed)
        else:  # rows of the ragged tensors, as shuffled gives them, in order
            dataset = tf.data.Dataset.range(len(sources)).map(
                lambda i: tf.nest.map_structure(lambda tensor: tensor[i], elements)
            )
        return dataset.padded_batch(config.batch_size).prefetch(tf.data.AUTOTUNE)

    return Datasets(
        splits=splits,
        mode=mode,
        source_vocab=source_vocab,
        target_vocab=target_vocab,
        max_length=min(longest, config.max_output_length),
        source=source,
        train=pipeline("train", shuffle=True),
        val=pipeline("val", shuffle=False),
    )


def ragged(rows: list[np.ndarray]) -> tf.RaggedTensor:
    return tf.RaggedTensor.from_row_lengths(
        np.concatenate(rows).astype(np.int32), [len(row) for row in rows]
    )


# The task contract's training hooks: this task adds no callbacks.
log_callbacks = no_log_callbacks
callbacks = no_callbacks


def build_model(config: Config, data: Datasets) -> keras.Model:
    return build_network(config, data.source_vocab.size, data.target_vocab.size)


def compile_args(config: Config, data: Datasets) -> dict[str, Any]:
    # Padding targets (id 0) count for nothing: ignore_class, not the mask, which the
    # Bahdanau decoder does not carry.
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    return {"loss": {"logits": loss}}


def keras_translator(model: keras.Model, config: Config, vocab_dir: Path) -> Translator:
    """A ``Translator`` that steps through the Keras model (as ``tf.function``s), with the
    vocabularies in ``vocab_dir``."""
    encoder = tf.function(encoder_model(model, config), reduce_retracing=True)
    step = tf.function(decoder_step_model(model, config), reduce_retracing=True)
    names = state_names(config)

    def encode(source: np.ndarray) -> list[np.ndarray]:
        outputs = encoder({"source": tf.constant(source)})
        constants = [outputs["values"].numpy(), outputs["keys"].numpy(), source]
        return [outputs[n].numpy() for n in names] + constants

    def decoder_step(previous: np.ndarray, states: list[np.ndarray]):
        *recurrent, values, keys, source = states
        feed = {"token": previous, "source": source, "values": values, "keys": keys}
        feed |= dict(zip(names, recurrent, strict=True))
        outputs = step({name: tf.constant(value) for name, value in feed.items()})
        new_states = [outputs[f"next_{n}"].numpy() for n in names] + [values, keys, source]
        return outputs["logits"].numpy(), new_states, outputs["attention"].numpy()

    return vocab_translator(vocab_dir, encode, decoder_step)


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


def evaluate(
    model: keras.Model, untrained: keras.Model, data: Datasets, config: Config, run: RunDir
) -> dict[str, Any]:
    """Greedy and beam-search scores on the test split, the untrained model's greedy exact
    match, a few examples, and attention plots of the first test examples."""
    sources = [s for s, _ in data.splits["test"]]
    references = [t for _, t in data.splits["test"]]
    translator = keras_translator(model, config, run.path / "vocab")  # the trainer wrote it
    print(f"decoding {len(sources):,} test sources: greedy", flush=True)  # progress
    greedy = translator.greedy(sources)
    decodings = {"greedy": greedy}
    if config.beam_width:
        print(f"decoding {len(sources):,} test sources: beam of {config.beam_width}", flush=True)
        decodings["beam"] = translator.beam(sources, config.beam_width, config.length_penalty)
    baseline = keras_translator(untrained, config, run.path / "vocab").greedy(sources)
    metrics: dict[str, Any] = {"test_pairs": len(sources)}
    for name, translations in decodings.items():
        metrics |= {
            f"{name}_{k}": v for k, v in scores(translations, references, data.mode).items()
        }
    metrics["untrained_greedy_exact_match"] = scores(baseline, references, data.mode)["exact_match"]
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
    return "\n".join(
        [
            f"| test ({metrics['test_pairs']} pairs) {header}",
            "|---|" + "---:|" * len(decodings),
            *rows,
            "",
            f"untrained greedy exact match: {metrics['untrained_greedy_exact_match']:.4f}",
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
    encoder, step = encoder_model(model, config), decoder_step_model(model, config)
    names = state_names(config)
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

    vocab = run.path / "vocab"
    facts = json.loads((vocab / "target.json").read_text(encoding="utf-8"))
    texts = [source for source, _ in read_splits(config)[0]["test"]]
    translate = TranslateText(
        encoder,
        step,
        TokenVocabulary.load(vocab / "source.json"),
        TokenVocabulary.load(vocab / "target.json"),
        facts["mode"],
        facts["max_length"],
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


def check_decoding(model: keras.Model, config: Config, export_dir: Path) -> dict[str, Any]:
    """The whole test split translated greedily and with the beam by Keras and by the
    exported ``encoder`` and ``decoder_step`` graphs, and greedily by the SavedModel's
    ``translate`` signature: the same texts."""
    sources = [source for source, _ in read_splits(config)[0]["test"]]
    keras_side = keras_translator(model, config, export_dir / "vocab")
    onnx_side = onnx_translator(load_graph(export_dir, "decoder_step"))
    beam = (config.beam_width or 4, config.length_penalty)  # checked even if not scored
    greedy = [t.text for t in keras_side.greedy(sources)]
    serve = tf.saved_model.load(str(export_dir / "savedmodel" / "translate" / "1"))
    served = [
        text.decode("utf-8")
        for first in range(0, len(sources), 256)
        for text in serve.signatures["serving_default"](
            text=tf.constant(sources[first : first + 256])
        )["translation"].numpy()
    ]
    decodings = {
        "greedy onnx": compared(greedy, [t.text for t in onnx_side.greedy(sources)]),
        "beam onnx": compared(
            [t.text for t in keras_side.beam(sources, *beam)],
            [t.text for t in onnx_side.beam(sources, *beam)],
        ),
        "greedy savedmodel translate": compared(greedy, served),
    }
    return {
        "ok": all(d["different"] == 0 for d in decodings.values()),
        **decodings,
        "summary": ", ".join(
            f"{name} {len(sources) - d['different']}/{len(sources)}"
            for name, d in decodings.items()
        )
        + " test translations identical to Keras's",
    }


def compared(expected: list[str], actual: list[str]) -> dict[str, Any]:
    """How many of ``actual`` differ from ``expected``, and the first few indices."""
    differ = [i for i, (a, b) in enumerate(zip(expected, actual, strict=True)) if a != b]
    return {"sources": len(expected), "different": len(differ), "first_different": differ[:5]}
