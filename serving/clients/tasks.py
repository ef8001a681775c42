"""Translation, tagging, forecasts and generated text through a server's task models, with
its URL alone (no run directory): ``python -m serving.server`` serves each run as a model
named after its task (``translate``, ``tagging``, ``sine``, ``charlm``, or the NAME of
``--run NAME=RUN_DIR``), which takes texts or windows and gives the task's answer over TF
Serving's API.

    from serving.clients import connect, tag_with, translate_with
    client = connect("http://127.0.0.1:8501")
    translate_with(client, ["3 March 2021"])                 # ["2021-03-03"]

``translate`` speaks the SavedModel ``translate`` signature's request, so TF Serving serving
that SavedModel answers it too. TF Serving's API has no decoding options: it translates
greedily (beam search goes through the Open Inference Protocol's parameters, or through a
run directory's encoder and decoder_step), and generates with ``serving.predict``'s default
settings (others go through the generate extension, ``/v2/models/charlm/generate``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np

from serving.clients.base import ModelClient
from serving.errors import UserError
from serving.predict_tasks.charlm import generated
from serving.predict_tasks.sine import forecast_table, parse_window
from serving.predict_tasks.tagging import tagged
from serving.runtime.charlm import GENERATION_DEFAULTS

# The output that tells a model's task: the translate signature's, and our task models'.
TASK_BY_OUTPUT = {
    "translation": "translate",
    "tags": "tagging",
    "next_values": "sine",
    "text_output": "charlm",
}


def served_task(client: ModelClient, model: str, version: int | None = None) -> str:
    """The task of the model served as ``model``, from its signature's outputs."""
    answer = client.metadata(model, version)
    try:
        outputs = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]["outputs"]
    except (KeyError, TypeError):
        outputs = {}
    for output, task in TASK_BY_OUTPUT.items():
        if output in outputs:
            return task
    raise UserError(
        f"model {model!r} at {client.url} is not a task model (its outputs are "
        f"{', '.join(outputs) or 'unknown'}): name a translate, tagging, sine or charlm model, "
        "or give the run directory of a graph"
    )


def translate_with(
    client: ModelClient, texts: Sequence[str], model: str = "translate", version: int | None = None
) -> list[str]:
    """The greedy translation of each text by ``model``."""
    outputs = client.predict(model, {"text": _texts(texts)}, version)
    return [str(text) for text in outputs["translation"]]


def tag_with(
    client: ModelClient, texts: Sequence[str], model: str = "tagging", version: int | None = None
) -> list[dict[str, list[str]]]:
    """Each text's items (characters, or tokens for a CoNLL-trained tagger), their tags and
    the items outside the vocabulary, as ``serving.predict --json`` gives them."""
    outputs = client.predict(model, {"text": _texts(texts)}, version)
    return [
        {key: _unpadded(outputs[key][row]) for key in ("items", "tags", "unknown")}
        for row in range(len(texts))
    ]


def forecast_with(
    client: ModelClient, windows: np.ndarray, model: str = "sine", version: int | None = None
) -> list[dict[str, Any]]:
    """The forecasts after each window (a row of ``windows``, oldest value first), as
    ``serving.predict --json`` gives them."""
    outputs = client.predict(model, {"window": np.asarray(windows, np.float32)}, version)
    names = ("next_value", "next_values", "recursive")
    return [{name: outputs[name][row].tolist() for name in names} for row in range(len(windows))]


def generate_with(
    client: ModelClient, prefixes: Sequence[str], model: str = "charlm", version: int | None = None
) -> list[dict[str, Any]]:
    """The text ``model`` generates after each prefix, with ``serving.predict``'s default
    length, temperature, top_k and seed (TF Serving's API has no place for others), and the
    prefix's characters outside the vocabulary."""
    outputs = client.predict(model, {"text_input": _texts(prefixes)}, version)
    return [
        {
            "generated": str(outputs["text_output"][row]),
            "unknown": _unpadded(outputs["unknown"][row]),
        }
        for row in range(len(prefixes))
    ]


def _texts(texts: Sequence[str]) -> np.ndarray:
    if isinstance(texts, str) or not texts:
        raise UserError("give a list of texts (at least one)")
    return np.array(list(texts), dtype=object)


def _unpadded(row: np.ndarray) -> list[str]:
    """A row of strings without the empty strings that pad it on the right."""
    return [str(value) for value in row if value != ""]


def predict(
    client: ModelClient, model: str, task: str, args: argparse.Namespace
) -> tuple[dict, str]:
    """``serving.predict``'s result and text for the task flags and texts in ``args``, by
    the task model ``model``; translations come without scores and unknown tokens, which TF
    Serving's API does not carry."""
    if task != "translate" and args.texts:
        raise UserError(f"{task} models take no texts as arguments: got {args.texts[0]!r}")
    if task == "translate":
        if not args.texts:
            raise UserError('a translate model needs texts to translate: --model NAME "text" ...')
        if (args.beam or 0) > 1 or args.length_penalty is not None:
            raise UserError(
                "--beam and --length-penalty: TF Serving's API translates greedily; for beam "
                "search give the run directory instead of --model"
            )
        translations = translate_with(client, args.texts, model, args.version)
        rows = [
            {"source": source, "translation": text}
            for source, text in zip(args.texts, translations, strict=True)
        ]
        return {"translations": rows}, "\n".join(translations)
    if task == "tagging":
        if args.text is None:
            raise UserError("a tagging model needs --text")
        (result,) = tag_with(client, [args.text], model, args.version)
        return tagged(result["items"], result["tags"], result["unknown"])
    if task == "charlm":
        if args.prefix is None:
            raise UserError("a charlm model needs --prefix")
        options = [
            f"--{name.replace('_', '-')}"
            for name in GENERATION_DEFAULTS
            if getattr(args, name) is not None
        ]
        if options:
            raise UserError(
                f"{', '.join(options)}: TF Serving's API generates with serving.predict's "
                "defaults only; for other settings give the run directory instead of --model, "
                "or POST to the server's /v2/models/NAME/generate"
            )
        (result,) = generate_with(client, [args.prefix], model, args.version)
        return generated(args.prefix, result["generated"], result["unknown"])
    if args.window is None:
        raise UserError("a sine model needs --window (--csv needs the run directory)")
    window = parse_window(args.window)
    (result,) = forecast_with(client, window[None], model, args.version)
    return result, forecast_table(result, window, f"{len(window)} values")
