"""TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest) over the ONNX
graphs: model status, metadata and ``:predict`` in the row (``instances``) and column
(``inputs``) formats, with TF Serving's response shapes. Errors are ``RequestError``s, which
the app answers as TF Serving does: ``{"error": "..."}`` with a 4xx status."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from serving.server.models import VERSION, Registry, RequestError, TaskModel
from serving.server.tensors import DTYPES, TF_BY_DATATYPE, as_array, json_array, parse_json

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
    if name in registry.tasks:
        registry.find_task(name, version)
    else:
        registry.find(name, version)
    state = {"error_code": "OK", "error_message": ""}
    return {"model_version_status": [{"version": VERSION, "state": "AVAILABLE", "status": state}]}


def metadata(registry: Registry, name: str, version: str | None) -> dict[str, Any]:
    if name in registry.tasks:
        task = registry.find_task(name, version)
        inputs = _task_tensor_infos(task.inputs)
        outputs = _task_tensor_infos(_rest_specs(task))
    else:
        served = registry.find(name, version)
        inputs = _tensor_infos(served.graph.inputs)
        outputs = _tensor_infos(served.graph.outputs)
    signature = {"inputs": inputs, "outputs": outputs, "method_name": "tensorflow/serving/predict"}
    return {
        "model_spec": {"name": name, "signature_name": "", "version": VERSION},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}},
    }


def _tensor_infos(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """TensorInfo of each graph tensor (manifest specs: dtype, shape with None)."""
    return {
        spec["name"]: _tensor_info(
            spec["name"], DTYPES[spec["dtype"]][0], [-1 if s is None else s for s in spec["shape"]]
        )
        for spec in specs
    }


def _task_tensor_infos(specs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """TensorInfo of each task model tensor (the Open Inference Protocol's metadata)."""
    return {
        spec["name"]: _tensor_info(spec["name"], TF_BY_DATATYPE[spec["datatype"]], spec["shape"])
        for spec in specs
    }


def _tensor_info(name: str, dtype: str, shape: list[int]) -> dict[str, Any]:
    return {
        "dtype": dtype,
        "tensor_shape": {
            "dim": [{"size": str(size), "name": ""} for size in shape],
            "unknown_rank": False,
        },
        "name": f"{SIGNATURE}_{name}:0",
    }


def _rest_specs(task: TaskModel) -> list[dict[str, Any]]:
    """The outputs of ``task`` that TF Serving's REST API answers."""
    return [
        spec
        for spec in task.outputs
        if task.rest_outputs is None or spec["name"] in task.rest_outputs
    ]


def predict(registry: Registry, name: str, version: str | None, body: bytes) -> dict[str, Any]:
    if name in registry.tasks:
        return _predict_task(registry.find_task(name, version), _request(body))
    served = registry.find(name, version)
    request = _request(body)
    names = [spec["name"] for spec in served.graph.inputs]
    return _answer(request, served.predict(_inputs(request, names, as_array)))


def _request(body: bytes) -> dict[str, Any]:
    """A :predict body: a JSON object for the one signature, with instances or inputs."""
    request = parse_json(body)
    if not isinstance(request, dict):
        raise RequestError("the request body must be a JSON object")
    signature = request.get("signature_name", SIGNATURE)
    if signature != SIGNATURE:
        raise RequestError(f"Serving signature name: {signature!r} not found in signature def")
    if ("instances" in request) == ("inputs" in request):
        raise RequestError("the request must have exactly one of 'instances' or 'inputs'")
    return request


def _predict_task(task: TaskModel, request: dict[str, Any]) -> dict[str, Any]:
    """A task model's answer in TF Serving's format, to a request with none of the Open
    Inference Protocol's parameters (TF Serving has none: another key is refused, as a
    silently ignored option would give another answer than the one asked for)."""
    extra = sorted(set(request) - {"signature_name", "instances", "inputs"})
    if extra:
        raise RequestError(
            f"unknown key(s) {', '.join(extra)}: TF Serving's API takes signature_name and "
            f"instances or inputs; options go as parameters to POST /v2/models/{task.name}/infer"
        )
    datatypes = {spec["name"]: spec["datatype"] for spec in task.inputs}

    def convert(key: str, value: Any) -> np.ndarray:
        if key not in datatypes:
            raise RequestError(f"model {task.name} takes inputs {', '.join(datatypes)}, not {key}")
        return json_array(key, value, datatypes[key])

    outputs = task.infer(_inputs(request, list(datatypes), convert), {})
    return _answer(request, {spec["name"]: outputs[spec["name"]] for spec in _rest_specs(task)})


# A JSON value of a request as an input's array: (input name, value) -> array
Convert = Callable[[str, Any], np.ndarray]


def _inputs(request: dict[str, Any], names: list[str], convert: Convert) -> dict[str, np.ndarray]:
    """The arrays of a request in either format, for a model with inputs ``names``."""
    if "instances" in request:
        return _rows_to_columns(names, request["instances"], convert)
    return _columns(names, request["inputs"], convert)


def _answer(request: dict[str, Any], outputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """``outputs`` in the request's format: rows as predictions, or columns as outputs (one
    output unnamed)."""
    if "instances" in request:
        return {"predictions": _columns_to_rows(outputs)}
    lists = {key: value.tolist() for key, value in outputs.items()}
    return {"outputs": next(iter(lists.values())) if len(lists) == 1 else lists}


def _columns(names: list[str], inputs: Any, convert: Convert) -> dict[str, np.ndarray]:
    """The columnar format's ``inputs``: an object by input name, or one input's value."""
    if isinstance(inputs, dict) and not _is_b64(inputs):
        return {key: convert(key, value) for key, value in inputs.items()}
    if len(names) != 1:
        raise RequestError(f"'inputs' must be an object naming {', '.join(names)}")
    return {names[0]: convert(names[0], inputs)}


def _rows_to_columns(names: list[str], instances: Any, convert: Convert) -> dict[str, np.ndarray]:
    """The row format's ``instances``: objects by input name, or one input's values."""
    if not isinstance(instances, list) or not instances:
        raise RequestError("'instances' must be a non-empty list")
    named = [isinstance(row, dict) and not _is_b64(row) for row in instances]
    if not all(named):
        if len(names) != 1 or any(named):
            raise RequestError(f"each instance must be an object naming {', '.join(names)}")
        return {names[0]: convert(names[0], instances)}
    keys = set(instances[0])
    if any(set(row) != keys for row in instances):
        raise RequestError("every instance must name the same inputs")
    return {key: convert(key, [row[key] for row in instances]) for key in instances[0]}


def _is_b64(value: Any) -> bool:
    """Whether a JSON object is TF Serving's binary value ``{"b64": ...}``."""
    return isinstance(value, dict) and set(value) == {"b64"}


def _columns_to_rows(outputs: dict[str, np.ndarray]) -> list[Any]:
    if len(outputs) == 1:
        return next(iter(outputs.values())).tolist()
    lists = {key: value.tolist() for key, value in outputs.items()}
    rows = len(next(iter(lists.values())))
    return [{key: value[row] for key, value in lists.items()} for row in range(rows)]
