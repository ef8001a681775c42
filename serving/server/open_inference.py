"""The Open Inference Protocol (KServe v2) over HTTP, as Triton and KServe speak it:
health, server and model metadata, and ``infer`` with JSON tensors or the binary tensor data
extension (which tritonclient's HTTP client uses by default)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from serving.server import sequences
from serving.server.models import VERSION, Registry, RequestError
from serving.server.tensors import (
    DTYPES,
    binary_data,
    check_datatype,
    datatype_of,
    dumps,
    parse_json,
    v2_array,
)

# The server's metadata, with the extensions it speaks as Triton names them in its own (each
# extension's page says its name): the binary tensor data one, request parameters a model
# takes (the task models'), and sequences with kept state whose ids may be strings. Triton
# names no extension for the generate routes (provisional), so neither does this server.
EXTENSIONS = ["binary_tensor_data", "parameters", "sequence", "sequence(string_id)"]
SERVER = {"name": "keras-rnn", "version": "0.1.0", "extensions": EXTENSIONS}
PLATFORM = "onnxruntime_onnx"  # Triton's platform name for ONNX graphs
HEADER_LENGTH = "Inference-Header-Content-Length"  # the binary extension's header
PATH = re.compile(
    r"/v2/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?"
    r"(?P<action>/ready|/infer|/generate|/generate_stream)?"
)


def route(path: str) -> tuple[str, str | None, str]:
    """``(model, version, action)`` of a /v2/models path: "metadata", "ready" or "infer", or
    the generate extension's "generate" and "generate_stream" (``serving.server.generate``
    answers those, on routes of their own)."""
    match = PATH.fullmatch(path)
    if match is None:
        raise RequestError(f"no such endpoint: {path}", 404)
    return match["name"], match["version"], (match["action"] or "/metadata").lstrip("/")


# infer(inputs, request parameters) -> outputs, of a graph or a task model
Infer = Callable[[dict[str, np.ndarray], dict[str, Any]], dict[str, np.ndarray]]
# answerable(request parameters) -> the names of the outputs such a request may ask for
Answerable = Callable[[dict[str, Any]], list[str]]


def target(
    registry: Registry, name: str, version: str | None, kept: sequences.Sequences
) -> tuple[dict[str, str], Answerable, Infer]:
    """The datatype of each input of the model served as ``name`` (a task model or a graph),
    the outputs a request may ask for, and what answers it: a task model takes request
    parameters; a graph takes the sequence parameters (its states then kept in ``kept``, and
    their next values no output of a step) and leaves the others. A request is checked whole
    before ``answer`` runs it: a step of a sequence changes its kept states."""
    if name in registry.tasks:
        task = registry.find_task(name, version)
        names = [spec["name"] for spec in task.outputs]
        return (
            {spec["name"]: spec["datatype"] for spec in task.inputs},
            lambda parameters: names,
            task.infer,
        )
    served = registry.find(name, version)
    datatypes = {spec["name"]: DTYPES[spec["dtype"]][1] for spec in served.graph.inputs}

    def answerable(parameters: dict[str, Any]) -> list[str]:
        kept_states = served.graph.states if sequences.control(parameters) else []
        next_states = {f"next_{state}" for state in kept_states}
        return [spec["name"] for spec in served.graph.outputs if spec["name"] not in next_states]

    def answer(inputs: dict[str, np.ndarray], parameters: dict[str, Any]) -> dict:
        return kept.predict(served, sequences.control(parameters), inputs)

    return datatypes, answerable, answer


def model_metadata(registry: Registry, name: str, version: str | None) -> dict[str, Any]:
    if name in registry.tasks:
        return registry.find_task(name, version).metadata()
    served = registry.find(name, version)
    return {
        "name": name,
        "versions": [VERSION],
        "platform": PLATFORM,
        "inputs": [_tensor_metadata(spec) for spec in served.graph.inputs],
        "outputs": [_tensor_metadata(spec) for spec in served.graph.outputs],
    }


def _tensor_metadata(spec: dict[str, Any]) -> dict[str, Any]:
    shape = [-1 if size is None else size for size in spec["shape"]]
    return {"name": spec["name"], "datatype": DTYPES[spec["dtype"]][1], "shape": shape}


def infer(
    registry: Registry,
    name: str,
    version: str | None,
    body: bytes,
    header_length: str | None,
    kept: sequences.Sequences,
) -> tuple[bytes, int | None]:
    """The response body for an infer request, and its JSON header's length when outputs
    travel as binary data (the response then needs ``Inference-Header-Content-Length``).
    ``kept`` holds the states of the sequences whose step graphs' states the server keeps."""
    datatypes, answerable, answer = target(registry, name, version, kept)
    header, binary = _split(body, header_length)
    request = parse_json(header)
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise RequestError("the request must be a JSON object with a list of inputs")
    response: dict[str, Any] = {"model_name": name, "model_version": VERSION}
    if "id" in request:
        if not isinstance(request["id"], str):
            raise RequestError(f"id must be a string, got {type(request['id']).__name__}")
        response["id"] = request["id"]
    parameters = _parameters(request, "the request")
    wanted, binary_outputs = _requested(request, answerable(parameters))
    inputs = _inputs(datatypes, request["inputs"], binary)
    outputs = answer(inputs, parameters)
    response["outputs"], chunks = [], []
    for output in outputs if wanted is None else wanted:
        array = outputs[output]
        tensor = {"name": output, "datatype": datatype_of(array), "shape": [*array.shape]}
        if output in binary_outputs:
            data = binary_data(array)
            tensor["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            tensor["data"] = array.ravel().tolist()
        response["outputs"].append(tensor)
    document = dumps(response)
    if not chunks:
        return document, None
    return document + b"".join(chunks), len(document)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.isdecimal() or int(header_length) > len(body):
        raise RequestError(f"{HEADER_LENGTH} {header_length!r} does not fit the body")
    return body[: int(header_length)], body[int(header_length) :]


def _inputs(datatypes: dict[str, str], tensors: list[Any], binary: bytes) -> dict[str, np.ndarray]:
    inputs, offset = {}, 0
    for tensor in tensors:
        size = _parameters(tensor, "an input").get("binary_data_size")
        chunk = None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise RequestError("binary_data_size runs past the end of the body")
            chunk, offset = binary[offset : offset + size], offset + size
        input_name, array = v2_array(tensor, chunk)
        check_datatype(input_name, tensor["datatype"], datatypes.get(input_name))
        if input_name in inputs:
            raise RequestError(f"input {input_name} is given twice")
        inputs[input_name] = array
    if offset != len(binary):
        raise RequestError(f"{len(binary) - offset} bytes of binary data belong to no input")
    return inputs


def _requested(request: dict[str, Any], outputs: list[str]) -> tuple[list[str] | None, set[str]]:
    """The outputs to return of those the request may ask for, ``outputs`` (those it names;
    None if it names none: all), and which go as binary."""
    default_binary = bool(_parameters(request, "the request").get("binary_data_output", False))
    asked = request.get("outputs")
    if asked is None:
        return None, set(outputs) if default_binary else set()
    if not isinstance(asked, list) or not all(isinstance(o, dict) for o in asked):
        raise RequestError("outputs must be a list of objects with a name")
    wanted, binary = [], set()
    for output in asked:
        name = output.get("name")
        check_output(name, outputs)
        wanted.append(name)
        if _parameters(output, f"output {name}").get("binary_data", default_binary):
            binary.add(name)
    return wanted, binary


def check_output(name: Any, outputs: list[str]) -> None:
    """A requested output's ``name`` must be one of ``outputs`` (a 400 names them)."""
    if not isinstance(name, str) or name not in outputs:
        raise RequestError(f"unknown output {name!r} (outputs: {', '.join(outputs)})")


def _parameters(document: Any, what: str) -> dict[str, Any]:
    """The ``parameters`` object of a request, input or output document (empty if none)."""
    parameters = document.get("parameters") if isinstance(document, dict) else None
    if parameters is None:
        return {}
    if not isinstance(parameters, dict):
        kind = type(parameters).__name__
        raise RequestError(f"the parameters of {what} must be an object, got {kind}")
    return parameters
