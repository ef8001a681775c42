"""The charlm task's contract (``keras_rnn.tasks.Task``); the package docstring describes
the task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rnn.graphs import ExportGraph
from keras_rnn.runs import RunDir
from keras_rnn.tasks.charlm import Config
from keras_rnn.tasks.charlm.compression import xz_baselines
from keras_rnn.tasks.charlm.corpus import CORPUS, read_text
from keras_rnn.tasks.charlm.data import (
    MAX_LOGITS,
    MAX_ROW,
    Datasets,
    evaluation_rows,
    make_datasets,
    streams,
)
from keras_rnn.tasks.charlm.dynamic import dynamic_bits_per_char
from keras_rnn.tasks.charlm.generation import (
    SampleEveryEpochs,
    keras_generate,
    state_names,
    step_model,
    step_runtime,
)
from keras_rnn.tasks.charlm.model import (
    LogPerplexity,
    Perplexity,
    ResetStates,
    build_model,
    compile_args,
    log_callbacks,
    network,
    stateless,
)
from serving.progress import Progress
from serving.runtime.charlm import onnx_generate
from serving.runtime.decoding import Sampling
from serving.runtime.graph import load_graph
from serving.runtime.vocab import Vocabulary

__all__ = [
    "CORPUS", "MAX_LOGITS", "MAX_ROW", "Config", "Datasets", "LogPerplexity", "Perplexity",
    "ResetStates", "SampleEveryEpochs", "build_model", "callbacks", "check_decoding",
    "compile_args", "evaluate",
    "evaluation_rows", "export_graphs", "format_metrics", "keras_generate", "log_callbacks",
    "make_datasets", "network", "read_text", "state_names", "stateless", "step_model", "streams",
]  # fmt: skip


def callbacks(config: Config, data: Datasets) -> list[keras.callbacks.Callback]:
    extra = [ResetStates()] if config.batching == "consecutive" else []
    return [*extra, SampleEveryEpochs(config, data.vocab)]


def export_graphs(model: keras.Model, config: Config, run: RunDir) -> list[ExportGraph]:
    """``char_lm`` (a window of ids -> logits at every step) and ``lm_step`` (one id and the
    states -> logits and the next states, for generation)."""
    model = stateless(model, config)
    vocab_size = model.get_layer("logits").units
    names = state_names(config)
    runtime = {"task": "charlm", "vocab": "vocab/vocab.json", **step_runtime(config)}

    def windows(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"characters": rng.integers(2, vocab_size, size=(batch, length), dtype=np.int32)}

    def steps(batch: int, length: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        feed = {"character": rng.integers(2, vocab_size, size=(batch, 1), dtype=np.int32)}
        return feed | {n: rng.normal(size=(batch, config.units)).astype(np.float32) for n in names}

    return [
        ExportGraph(
            name=model.name,
            model=model,
            inputs={"characters": ((None, None), "int32")},
            outputs=["logits"],
            sample=windows,
            lengths=(17, 40),
            runtime=runtime,
        ),
        ExportGraph(
            name="lm_step",
            model=step_model(model, config),
            inputs={"character": ((None, 1), "int32")}
            | {n: ((None, config.units), "float32") for n in names},
            outputs=["logits", *(f"next_{n}" for n in names)],
            sample=steps,
            lengths=(1,),
            # what serving.predict generates with, from zero states (as Triton's implicit
            # state starts a sequence, and as the server's kept sequences start)
            runtime=runtime | {"default": True, "zero_initial_states": True},
        ),
    ]


def check_decoding(model: keras.Model, config: Config, export_dir: Path) -> dict[str, Any]:
    """Text generated from ``--sample-prefix`` greedily and sampled (temperature 0.5, the
    run's seed) by Keras and by the exported ``lm_step`` graph: the same characters."""
    vocab = Vocabulary.load(export_dir / "vocab" / "vocab.json")
    graph = load_graph(export_dir, "lm_step")
    model = stateless(model, config)
    rows = []
    for settings in (Sampling(200, 0.0, 0, 0), Sampling(200, 0.5, 0, config.seed)):
        keras_text = keras_generate(model, config, vocab, config.sample_prefix, settings)[0]
        onnx_text = onnx_generate(graph, vocab, config.sample_prefix, settings)[0]
        rows.append({"temperature": settings.temperature, "same": keras_text == onnx_text})
    same = sum(row["same"] for row in rows)
    return {
        "ok": same == len(rows),
        "generations": rows,
        "summary": f"{same} of {len(rows)} generations of 200 characters identical",
    }


def evaluate(
    model: keras.Model, untrained: keras.Model, data: Datasets, config: Config, run: RunDir
) -> dict[str, Any]:
    """Perplexity and bits per character on validation and test, the same with dynamic
    evaluation (``dynamic``), and what xz -9e spends per test character (the baseline to
    beat)."""
    model = stateless(model, config)
    # One graph for rows of any shape: called eagerly, the recurrent layers' loop would run
    # step by step in Python (7 s for a row of 829 characters against 0.5 s traced)
    signature = {name: tf.TensorSpec(x.shape, x.dtype) for name, x in model.input.items()}
    logits = tf.function(
        lambda inputs: model(inputs, training=False)["logits"], input_signature=[signature]
    )
    parts = {"val": data.ids[data.val_start : data.test_start], "test": data.ids[data.test_start :]}
    metrics = {}
    for split, ids in parts.items():
        print(f"evaluating on {split}: {len(ids):,} characters", flush=True)  # progress
        entropy = Perplexity(bits=True)
        rows = evaluation_rows(ids, data.vocab.size)
        with Progress(f"evaluating on {split}", int(rows.cardinality())) as progress:
            for inputs, targets in rows:
                entropy.update_state(targets, logits(inputs))
                progress.advance()
        bits = float(entropy.result())
        metrics[f"{split}_bits_per_char"] = bits
        metrics[f"{split}_perplexity"] = 2.0**bits
    for split, ids in parts.items() if config.dynamic_rate else ():
        print(f"dynamic evaluation on {split}", flush=True)  # progress
        metrics[f"{split}_bits_per_char_dynamic"] = dynamic_bits_per_char(
            model, config, ids, config.dynamic_rate, config.dynamic_segment, f"dynamic, {split}"
        )
    print("compressing the test text with xz -9e, alone and after the training text", flush=True)
    metrics |= xz_baselines(data.text[: data.val_start], data.text[data.test_start :])
    metrics["vocabulary"] = data.vocab.size
    print("writing a 400-character sample", flush=True)  # progress
    metrics["sample"] = (
        config.sample_prefix
        + keras_generate(
            model, config, data.vocab, config.sample_prefix, Sampling(400, 0.5, 0, config.seed)
        )[0]
    )
    return metrics


def format_metrics(metrics: dict[str, Any], config: Config) -> str:
    return "\n".join(
        [
            "| split | perplexity | bits per character |",
            "|---|---:|---:|",
            *(
                f"| {split} | {metrics[f'{split}_perplexity']:.3f} "
                f"| {metrics[f'{split}_bits_per_char']:.3f} |"
                for split in ("val", "test")
            ),
            *(
                f"| {split}, dynamic evaluation | | {metrics[key]:.3f} |"
                for split in ("val", "test")
                if (key := f"{split}_bits_per_char_dynamic") in metrics
            ),
            f"| test, xz -9e alone | | {metrics['test_bits_per_char_xz']:.3f} |",
            f"| test, xz -9e after the training text | "
            f"| {metrics['test_bits_per_char_xz_after_train']:.3f} |",
            "",
            f"sample (temperature 0.5): {metrics['sample']!r}",
        ]
    )
