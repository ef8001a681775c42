"""Task models: each served run also answers as one model named after its task (or the NAME
of ``--run NAME=RUN_DIR``), which takes and gives what a user of the task thinks in. Each is
a ``TaskModel`` (``serving.server.models``) over the run's served graphs, computing with the
runtime functions of ``serving.predict``, so both give the same answers.

    translate  text BYTES (-1)          -> translation BYTES (-1), unknown BYTES (-1, -1),
                                           score FP32 (-1); parameters beam_width,
                                           length_penalty
    tagging    text BYTES (-1)          -> items BYTES (-1, -1), tags BYTES (-1, -1),
                                           unknown BYTES (-1, -1)
    sine       window FP32 (-1, -1)     -> next_value FP32 (-1), next_values FP32 (-1, H),
                                           recursive FP32 (-1, H)
    charlm     text_input BYTES (-1)    -> text_output BYTES (-1), unknown BYTES (-1, -1);
                                           parameters length, temperature, top_k, seed
                                           (``serving.server.generate``, which also answers
                                           Triton's generate extension)

One row per text or window; lists of different lengths (a text's items and tags, its unknown
tokens) are padded on the right with empty strings, which no item is. ``translate`` over TF
Serving's REST API answers ``translation`` alone, as the SavedModel's signature does.

A task adds its model with a ``TaskModel`` subclass and its entry in ``TASK_MODELS``. A
subclass written in another module (``CharLM``) imports ``TaskModel`` and the helpers
``tensor_spec``, ``texts`` and ``padded`` from ``serving.server.models``, never from here:
``TASK_MODELS`` imports that module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from serving.errors import UserError
from serving.runtime.sine import forecast
from serving.runtime.tagging import load_tags, tag
from serving.runtime.translate import graph_translator
from serving.runtime.vocab import Vocabulary
from serving.server.batching import BatchOptions
from serving.server.continuous import ContinuousTranslator
from serving.server.generate import CharLM
from serving.server.models import (
    ObservedGraph,
    Registry,
    RequestError,
    TaskModel,
    load_runs,
    padded,
    tensor_spec,
    texts,
)

MAX_BEAM_WIDTH = 64  # beams per text a request may ask for: each is a row of every step


class TranslateModel(TaskModel):
    """Texts in, translations out: greedy by default, beam search with ``beam_width`` 2 to
    ``MAX_BEAM_WIDTH`` (``length_penalty``: 1 unless given). Empty texts translate to empty
    texts; each text's source tokens outside the vocabulary come back in ``unknown``."""

    task = "translate"
    inputs = (tensor_spec("text", "BYTES", -1),)
    outputs = (
        tensor_spec("translation", "BYTES", -1),
        tensor_spec("unknown", "BYTES", -1, -1),
        tensor_spec("score", "FP32", -1),
    )
    parameters: ClassVar[dict[str, type]] = {"beam_width": int, "length_penalty": float}
    rest_outputs = ("translation",)  # the SavedModel `translate` signature's one output

    def __init__(self, name: str, run_dir: Path, graphs: dict[str, ObservedGraph]):
        super().__init__(name, run_dir, graphs)
        self.translator = graph_translator(graphs["encoder"], graphs["decoder_step"])
        self.decoder: ContinuousTranslator | None = None  # while the server batches

    def start_batching(self, options: BatchOptions | None) -> None:
        """Decode concurrent requests together, up to ``options.max_batch_size`` rows a
        step (``serving.server.continuous``)."""
        if options is not None:
            self.decoder = ContinuousTranslator(self.translator, options.max_batch_size, self.name)

    def stop_batching(self) -> None:
        if self.decoder is not None:
            self.decoder.close()

    def answer(
        self, inputs: dict[str, np.ndarray], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        width = parameters.get("beam_width", 1)
        if not 1 <= width <= MAX_BEAM_WIDTH:
            raise RequestError(f"beam_width must be 1 (greedy) to {MAX_BEAM_WIDTH}, got {width}")
        penalty = parameters.get("length_penalty")
        if penalty is not None and width < 2:
            raise RequestError("length_penalty applies to beam search: set beam_width >= 2")
        if penalty is not None and not (math.isfinite(penalty) and penalty >= 0):
            raise RequestError(f"length_penalty must be >= 0, got {penalty}")
        sources = texts("text", inputs["text"])
        penalty = 1.0 if penalty is None else penalty
        if self.decoder is not None:
            translations = self.decoder.translate(sources, width, penalty)
        elif width > 1:
            translations = self.translator.beam(sources, width, penalty)
        else:
            translations = self.translator.greedy(sources)
        return {
            "translation": np.array([t.text for t in translations], dtype=object),
            "unknown": padded([t.unknown for t in translations]),
            "score": np.array([t.score for t in translations], dtype=np.float32),
        }


class TaggingModel(TaskModel):
    """Texts in, each item (character, or token for a CoNLL-trained tagger) with its tag
    out, and the items outside the vocabulary; long texts are tagged in pieces, as
    ``serving.predict`` tags them."""

    task = "tagging"
    inputs = (tensor_spec("text", "BYTES", -1),)
    outputs = (
        tensor_spec("items", "BYTES", -1, -1),
        tensor_spec("tags", "BYTES", -1, -1),
        tensor_spec("unknown", "BYTES", -1, -1),
    )

    def __init__(self, name: str, run_dir: Path, graphs: dict[str, ObservedGraph]):
        super().__init__(name, run_dir, graphs)
        self.tagger = graphs["tagger"]
        vocab_path = self.tagger.export_dir / self.tagger.runtime["vocab"]
        self.vocab, self.tag_names = Vocabulary.load(vocab_path), load_tags(vocab_path)

    def answer(
        self, inputs: dict[str, np.ndarray], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        items, tags, unknown = [], [], []
        for index, text in enumerate(texts("text", inputs["text"])):
            try:
                row_items, row_tags, row_unknown = tag(
                    self.tagger, self.vocab, self.tag_names, text
                )
            except UserError as error:  # the runtime's words name no request field
                message = str(error).replace("the text", f"input text element {index}")
                raise RequestError(message) from None
            items.append(row_items)
            tags.append(row_tags)
            unknown.append(row_unknown)
        return {"items": padded(items), "tags": padded(tags), "unknown": padded(unknown)}


class SineModel(TaskModel):
    """Windows in (one a row, oldest value first), ``serving.predict``'s forecasts out: one
    step, direct multi-step and recursive multi-step."""

    task = "sine"
    inputs = (tensor_spec("window", "FP32", -1, -1),)

    def __init__(self, name: str, run_dir: Path, graphs: dict[str, ObservedGraph]):
        super().__init__(name, run_dir, graphs)
        self.forecaster = graphs["sine_forecaster"]
        horizon = self.forecaster.runtime["horizon"]
        self.outputs = (
            tensor_spec("next_value", "FP32", -1),
            tensor_spec("next_values", "FP32", -1, horizon),
            tensor_spec("recursive", "FP32", -1, horizon),
        )

    def answer(
        self, inputs: dict[str, np.ndarray], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        rows = [forecast(self.forecaster, window) for window in inputs["window"]]
        return {
            name: np.array([row[name] for row in rows], dtype=np.float32)
            for name in ("next_value", "next_values", "recursive")
        }


# The task model of each task, by the task its graphs' runtime facts name.
TASK_MODELS: dict[str, type[TaskModel]] = {
    model.task: model for model in (TranslateModel, TaggingModel, SineModel, CharLM)
}


def load_models(
    runs: Sequence[Path | tuple[str, Path]], threads: int | None = None
) -> tuple[Registry, dict[str, str]]:
    """``load_runs``'s graphs and notes, and the task model of each run whose task has one,
    named after the task (or the run's NAME). Two models of one name are a ``UserError``."""
    registry, skipped = load_runs(runs, threads)
    for run in runs:
        run_name, run_dir = run if isinstance(run, tuple) else (None, run)
        prefix = "" if run_name is None else f"{run_name}."
        graphs = {
            served.graph.name: served.graph
            for served in registry.graphs.values()
            if (served.run_dir, served.prefix) == (run_dir, prefix)
        }
        task = next(iter(graphs.values())).runtime.get("task") if graphs else None
        if task not in TASK_MODELS:
            continue
        name = run_name or task
        if name in registry.tasks or name in registry.graphs:
            other = registry.tasks.get(name) or registry.graphs[name]
            raise UserError(
                f"model {name} is served from both {other.run_dir} and {run_dir}: name the "
                "runs (--run NAME=RUN_DIR), or serve them from two servers"
            )
        registry.tasks[name] = TASK_MODELS[task](name, run_dir, graphs)
        skipped.pop(prefix + task, None)  # translate: the SavedModel graph it stands for
    return registry, skipped
