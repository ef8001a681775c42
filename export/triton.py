"""A Triton Inference Server model repository for the exported ONNX graphs.

``triton/GRAPH/config.pbtxt`` (a ``ModelConfig`` for the onnxruntime backend, from the graph's
manifest entry) and ``triton/GRAPH/1/model.onnx`` (a copy of ``onnx/GRAPH.onnx``, so the
folder can be mounted alone).

A step graph whose states start at zeros (charlm's ``lm_step``) gets Triton's sequence batcher
with implicit state, as our server keeps them (``serving.server.sequences``): each state input
and its ``next_<state>`` output is a ``state`` entry starting at zeros, left out of the inputs
and outputs a client sends and receives. ``decoder_step`` starts from the encoder's states,
which implicit state cannot take from a request: it stays a plain function.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from google.protobuf import text_format
from tritonclient.grpc.model_config_pb2 import DataType, ModelConfig

from keras_rnn.errors import UserError
from keras_rnn.runs import atomic_write_bytes
from serving.runtime.graph import IDLE_SECONDS, carried_states

# The largest batch Triton sends (and accepts in one request); the graphs take any batch.
MAX_BATCH_SIZE = 256

# Manifest dtype names -> Triton's data types (its model_configuration.md "Datatypes").
DATA_TYPES = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16",
    "string": "TYPE_STRING",
}


def data_type(dtype: str) -> int:
    """Triton's ``DataType`` value for a manifest dtype name; ValueError for another name."""
    if dtype not in DATA_TYPES:
        raise ValueError(f"no Triton data type for dtype {dtype!r}")
    return DataType.Value(DATA_TYPES[dtype])


def model_config(entry: dict[str, Any], max_batch_size: int = MAX_BATCH_SIZE) -> ModelConfig:
    """The ``ModelConfig`` of a manifest entry. When every input and output has a variable
    first dimension, that is Triton's batch axis: ``max_batch_size``, and dims without it;
    otherwise ``max_batch_size`` 0 and full dims. A tensor left with no dims gets
    ``dims: [1]`` and an empty ``reshape``, as Triton requires. Dynamic batching, or, for a
    step graph whose states start at zeros, sequence batching with its states kept by Triton."""
    tensors = [*entry["inputs"], *entry["outputs"]]
    batched = all(tensor["shape"] and tensor["shape"][0] is None for tensor in tensors)
    first = 1 if batched else 0  # the first dim of the dims written
    config = ModelConfig(
        name=entry["name"], backend="onnxruntime", max_batch_size=max_batch_size if batched else 0
    )
    states = carried_states(entry) if entry.get("runtime", {}).get("zero_initial_states") else []
    kept = {*states, *(f"next_{name}" for name in states)}
    if states:
        _keep_states(config, entry, states, first)
    elif batched:
        config.dynamic_batching.SetInParent()
    for field, specs in ((config.input, entry["inputs"]), (config.output, entry["outputs"])):
        for spec in specs:
            if spec["name"] in kept:
                continue
            dims = _dims(spec, first)
            tensor = field.add(name=spec["name"], data_type=data_type(spec["dtype"]))
            tensor.dims.extend(dims or [1])
            if not dims:
                tensor.reshape.SetInParent()
    return config


def _keep_states(config: ModelConfig, entry: dict[str, Any], states: list[str], first: int) -> None:
    """Triton's sequence batcher with implicit state for ``states``, each starting at zeros
    (a variable dim is 1 there, as Triton's own default makes it), dropped after our server's
    idle time. No control input: the graph does not take one."""
    specs = {spec["name"]: spec for spec in entry["inputs"]}
    batcher = config.sequence_batching
    batcher.max_sequence_idle_microseconds = round(IDLE_SECONDS * 1_000_000)
    for name in states:
        dims = _dims(specs[name], first)
        state = batcher.state.add(
            input_name=name,
            output_name=f"next_{name}",
            data_type=data_type(specs[name]["dtype"]),
            dims=dims,
        )
        state.initial_state.add(
            name="zeros",
            data_type=state.data_type,
            dims=[1 if size == -1 else size for size in dims],
            zero_data=True,
        )


def _dims(spec: dict[str, Any], first: int) -> list[int]:
    """A tensor's dims from its ``first`` on, -1 where the size varies."""
    return [-1 if size is None else size for size in spec["shape"][first:]]


def config_text(entry: dict[str, Any]) -> str:
    """The ``config.pbtxt`` text of a manifest entry (``model_config`` in text format)."""
    return text_format.MessageToString(model_config(entry))


def write_model(root: Path, entry: dict[str, Any]) -> Path:
    """Write ``root/triton/NAME/`` for a manifest entry whose ONNX file is under ``root``,
    after checking that file's input and output names against the entry; returns the folder."""
    onnx_path = root / entry["onnx"]
    check_onnx_names(onnx_path, entry)
    folder = root / "triton" / entry["name"]
    (folder / "1").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, folder / "1" / "model.onnx")  # copyfile: the umask's mode
    atomic_write_bytes(folder / "config.pbtxt", config_text(entry).encode())
    return folder


def check_onnx_names(onnx_path: Path, entry: dict[str, Any]) -> None:
    """ValueError unless the ONNX graph's input and output names are the manifest entry's."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {tensor.name for tensor in graph.initializer}
    for kind, found in (("inputs", graph.input), ("outputs", graph.output)):
        names = {value.name for value in found} - initializers
        wanted = {spec["name"] for spec in entry[kind]}
        if names != wanted:
            raise ValueError(f"{onnx_path}: {kind} {sorted(names)}, manifest {sorted(wanted)}")


def check_repository(export_dir: Path, entries: list[dict[str, Any]]) -> None:
    """UserError unless ``export_dir/triton`` holds a folder for exactly the manifest's graphs
    written to ONNX, each with the config this module writes and a copy of its ONNX file."""
    again = f"re-export with python -m export {export_dir.parent} --force"
    onnx_entries = [entry for entry in entries if "onnx" in entry["formats"]]
    root = export_dir / "triton"
    wanted = sorted(entry["name"] for entry in onnx_entries)
    if not root.is_dir():
        if wanted:  # an export without ONNX graphs has no triton/
            raise UserError(f"{root} is missing: {again}")
        return
    found = sorted(path.name for path in root.iterdir())
    if found != wanted:
        raise UserError(f"{root} holds {found}, not the manifest's ONNX graphs {wanted}: {again}")
    for entry in onnx_entries:
        folder, source = root / entry["name"], export_dir / entry["onnx"]
        config, model = folder / "config.pbtxt", folder / "1" / "model.onnx"
        for path in (config, model, source):
            if not path.is_file():
                raise UserError(f"{path} is missing: {again}")
        if config.read_text(encoding="utf-8") != config_text(entry):
            raise UserError(f"{config} does not match manifest.json: {again}")
        if model.read_bytes() != source.read_bytes():
            raise UserError(f"{model} is not a copy of {source}: {again}")
