"""TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest) over the ONNX
graphs: model status, metadata and ``:predict`` in the row (``instances``) and column
(``inputs``) formats, with TF Serving's response shapes. Errors are ``RequestError``s, which
the app answers as TF Serving does: ``{"error": "..."}`` with a 4xx status."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from serving.server.models import VERSION, Registry, RequestError, ServedGraph
from serving.server.tensors import DTYPES, as_array, parse_json

SIGNATURE = "serving_default"
PATH = re.compile(
    r"/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[^/:]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<action>/metadata|:predict|:classify|:regress)?"
)


def route(path: str) -> tuple[str, str | None, str]:
    """``(model, version, action)`` of a /v1 path: action is "status", "metadata" or
    "predict"."""
    match = PATH.fullmatch(path)
    if match is None:
        raise RequestError(f"no such endpoint: {path}", 404)
    if match["label"] is not None:
        raise RequestError(f"version labels are not served (only version {VERSION})", 404)
    version = match["version"]
    if version is not None and not version.isdigit():
        raise RequestError(f"version must be a number, got {version!r}")
    action = (match["action"] or "/status").lstrip("/:")
    if action in ("classify", "regress"):
        raise RequestError(f"{action} is not served: the graphs have predict signatures only")
    return match["name"], version, action


def status(registry: Registry, name: str, version: str | None) -> dict[str, Any]:
    registry.find(name, version)
    state = {"error_code": "OK", "error_message": ""}
    return {"model_version_status": [{"version": VERSION, "state": "AVAILABLE", "status": state}]}


def metadata(registry: Registry, name: str, version: str | None) -> dict[str, Any]:
    served = registry.find(name, version)
    signature = {
        "inputs": _tensor_infos(served.graph.inputs),
        "outputs": _tensor_infos(served.graph.outputs),
        "method_name": "tensorflow/serving/predict",
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": VERSION},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
    }


def _tensor_infos(specs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        spec["name"]: {
            "dtype": DTYPES[spec["dtype"]][0],
            "tensor_shape": {
                "dim": [{"size": str(-1 if s is None else s), "name": ""} for s in spec["shape"]],
                "unknown_rank": False,
            },
            "name": f"{SIGNATURE}_{spec['name']}:0",
        }
        for spec in specs
    }


def predict(registry: Registry, name: str, version: str | None, body: bytes) -> dict[str, Any]:
    served = registry.find(name, version)
    request = parse_json(body)
    if not isinstance(request, dict):
        raise RequestError("the request body must be a JSON object")
    signature = request.get("signature_name", SIGNATURE)
    if signature != SIGNATURE:
        raise RequestError(f"Serving signature name: {signature!r} not found in signature def")
    if ("instances" in request) == ("inputs" in request):
        raise RequestError("the request must have exactly one of 'instances' or 'inputs'")
    if "instances" in request:
        outputs = served.predict(_rows_to_columns(served, request["instances"]))
        return {"predictions": _columns_to_rows(outputs)}
    outputs = served.predict(_columns(served, request["inputs"]))
    lists = {key: value.tolist() for key, value in outputs.items()}
    return {"outputs": next(iter(lists.values())) if len(lists) == 1 else lists}


def _input_names(served: ServedGraph) -> list[str]:
    return [spec["name"] for spec in served.graph.inputs]


def _columns(served: ServedGraph, inputs: Any) -> dict[str, np.ndarray]:
    if isinstance(inputs, dict):
        return {key: as_array(key, value) for key, value in inputs.items()}
    names = _input_names(served)
    if len(names) != 1:
        raise RequestError(f"'inputs' must be an object naming {', '.join(names)}")
    return {names[0]: as_array(names[0], inputs)}


def _rows_to_columns(served: ServedGraph, instances: Any) -> dict[str, np.ndarray]:
    if not isinstance(instances, list) or not instances:
        raise RequestError("'instances' must be a non-empty list")
    names = _input_names(served)
    if not all(isinstance(row, dict) for row in instances):
        if len(names) != 1 or any(isinstance(row, dict) for row in instances):
            raise RequestError(f"each instance must be an object naming {', '.join(names)}")
        return {names[0]: as_array(names[0], instances)}
    keys = set(instances[0])
    if any(set(row) != keys for row in instances):
        raise RequestError("every instance must name the same inputs")
    return {key: as_array(key, [row[key] for row in instances]) for key in instances[0]}


def _columns_to_rows(outputs: dict[str, np.ndarray]) -> list[Any]:
    if len(outputs) == 1:
        return next(iter(outputs.values())).tolist()
    lists = {key: value.tolist() for key, value in outputs.items()}
    rows = len(next(iter(lists.values())))
    return [{key: value[row] for key, value in lists.items()} for row in range(rows)]
