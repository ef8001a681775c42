"""The text-format files TF Serving reads from the model base folder: ``models.config`` (a
``ModelServerConfig``) and the batching parameters (``BatchingParameters``). Written as text:
this side imports no protobuf messages (tensorflow-serving-api requires TensorFlow)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

MOUNT = "/models"  # where the container sees the model base folder
MODELS_CONFIG = "models.config"  # --model_config_file; also the mark of a folder of ours
BATCHING_FILE = "batching_parameters.txt"  # --batching_parameters_file
# TF Serving's name for one model's batching parameters, read from its version folder with
# --enable_per_model_batching_parameters; a model without the file is not batched.
MODEL_BATCHING_FILE = "batching_params.pbtxt"
VERSION = "1"  # the one version of each model, as the export writes it
HEADER = "# Written by python -m serving.tfserving: TF Serving's ModelServerConfig (text format)."

# (field, value, why): sane values for a CPU server, to tune with TF Serving's batching guide.
BATCHING = (
    (
        "max_batch_size",
        128,
        "the most rows one run takes, and the most one request may hold: TF Serving refuses "
        "a request of more rows when batching is on",
    ),
    (
        "batch_timeout_micros",
        1000,
        "a row waits at most 1 ms for others to fill its batch (the guide's CPU range is 0 to "
        "10 ms; 0 never waits)",
    ),
    (
        "num_batch_threads",
        4,
        "batches run at once; the guide starts from the server's CPU cores: set it to the "
        "container's",
    ),
    (
        "max_enqueued_batches",
        4,
        "batches waiting beyond the running ones, as many as threads (the guide, for online "
        "serving): a request that would wait longer is refused (UNAVAILABLE), not queued",
    ),
)
_BATCHING_NOTE = """\
# Only graphs whose inputs vary in the batch dimension alone are batched (they get a copy of
# this file as <graph>/1/batching_params.pbtxt; the server runs with
# --enable_per_model_batching_parameters, which takes only num_batch_threads from here).
# The others are not batched: TF Serving would concatenate requests of different lengths by
# padding each input with its own first element (batching_util.h, AddPadding), which changes a
# recurrent graph's answer, or refuse them without padding.
"""


def models_config(names: list[str]) -> str:
    """``models.config``: one model per graph, its base path under ``MOUNT``."""
    entries = "".join(
        "  config {\n"
        f'    name: "{name}"\n'
        f'    base_path: "{MOUNT}/{name}"\n'
        '    model_platform: "tensorflow"\n'
        f"    model_version_policy {{ specific {{ versions: {VERSION} }} }}\n"
        "  }\n"
        for name in names
    )
    return (
        f"{HEADER}\n"
        "# One model per SavedModel graph, served by the graph's name: REST at\n"
        "# /v1/models/<graph>:predict, gRPC PredictionService with model_spec.name <graph>.\n"
        "# Version policy: specific version 1, the only one this command writes; a version folder\n"
        "# added by hand is not served in its place (rebuild the folder with --force instead).\n"
        f"model_config_list {{\n{entries}}}\n"
    )


def served_names(path: Path) -> frozenset[str] | None:
    """The model names of a ``models.config`` this command wrote, or None if it did not
    write the file (missing, unreadable, or without our header line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if text.split("\n", 1)[0] != HEADER:
        return None
    return frozenset(re.findall(r'^    name: "([^"\n]*)"$', text, flags=re.MULTILINE))


def batching_parameters(per_model: bool = False) -> str:
    """The batching parameters as text: the server's file, or (``per_model``) a graph's copy."""
    lines = [f"# {'One graph' if per_model else 'TF Serving'}'s BatchingParameters (text format)."]
    if not per_model:
        lines.append(_BATCHING_NOTE.rstrip("\n"))
    for field, value, why in BATCHING:
        lines += [textwrap.fill(why, 96, initial_indent="# ", subsequent_indent="# ")]
        lines.append(f"{field} {{ value: {value} }}")
    lines += [
        "# off: a batched graph's inputs vary in the batch dimension alone, so nothing is padded",
        "pad_variable_length_inputs: false",
    ]
    return "\n".join(lines) + "\n"


def batchable(entry: dict[str, Any]) -> bool:
    """Whether TF Serving may batch the graph: every input varies in the batch dimension alone,
    so requests concatenate without padding."""
    return all(None not in spec["shape"][1:] for spec in entry["inputs"])
