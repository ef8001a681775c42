"""Request bodies to numpy and numpy to response bodies, as both protocols spell them."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from serving.server.models import RequestError

# manifest dtype -> (TensorFlow's DataType name, the Open Inference Protocol's datatype)
DTYPES = {
    "float32": ("DT_FLOAT", "FP32"),
    "float64": ("DT_DOUBLE", "FP64"),
    "float16": ("DT_HALF", "FP16"),
    "int8": ("DT_INT8", "INT8"),
    "int16": ("DT_INT16", "INT16"),
    "int32": ("DT_INT32", "INT32"),
    "int64": ("DT_INT64", "INT64"),
    "uint8": ("DT_UINT8", "UINT8"),
    "bool": ("DT_BOOL", "BOOL"),
    "string": ("DT_STRING", "BYTES"),
}
NUMPY_BY_DATATYPE = {v2: np.dtype(dtype) for dtype, (_, v2) in DTYPES.items() if dtype != "string"}


def parse_json(body: bytes) -> Any:
    """The JSON document in ``body``; malformed JSON, NaN and Infinity are a 400 (JSON has
    no NaN: Python's parser would accept it, and a forecast of NaN is no answer)."""

    def refuse(constant: str) -> None:
        raise RequestError(f"{constant} is not a number the graphs take (JSON has no {constant})")

    try:
        return json.loads(body, parse_constant=refuse)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(f"malformed JSON: {error}") from None


def dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def as_array(name: str, value: Any) -> np.ndarray:
    """A JSON value (nested lists of numbers) as an array; ragged lists are a 400."""
    if isinstance(value, dict):
        raise RequestError(f"input {name} must be a list of numbers, got an object")
    try:
        array = np.asarray(value)
    except ValueError:
        raise RequestError(f"input {name} is ragged: every row must have the same shape") from None
    if array.dtype.kind not in "biuf":
        raise RequestError(f"input {name} must hold numbers, got {_kind(array)}")
    return array


def _kind(array: np.ndarray) -> str:
    return {"U": "strings", "O": "mixed values or nulls"}.get(array.dtype.kind, str(array.dtype))


def v2_array(tensor: dict[str, Any], binary: bytes | None = None) -> tuple[str, np.ndarray]:
    """An Open Inference Protocol input tensor (JSON ``data``, or the binary extension's
    bytes) as a named array of its declared datatype and shape."""
    if not isinstance(tensor, dict):
        raise RequestError("each input must be an object with name, shape, datatype and data")
    name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
    if not isinstance(name, str):
        raise RequestError("an input has no name")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise RequestError(f"input {name}: shape must be a list of sizes, got {shape!r}")
    dtype = NUMPY_BY_DATATYPE.get(datatype)
    if dtype is None:
        raise RequestError(
            f"input {name}: datatype {datatype!r} is not one of {', '.join(NUMPY_BY_DATATYPE)}"
        )
    if binary is not None:
        if len(binary) != dtype.itemsize * int(np.prod(shape)):
            raise RequestError(
                f"input {name}: {len(binary)} bytes of binary data do not hold shape {shape} "
                f"of {datatype}"
            )
        return name, np.frombuffer(binary, dtype.newbyteorder("<")).reshape(shape)
    if "data" not in tensor:
        raise RequestError(f"input {name} has no data")
    array = as_array(name, tensor["data"])
    if array.size != int(np.prod(shape)):
        raise RequestError(f"input {name}: {array.size} values do not fill shape {shape}")
    if array.dtype.kind == "f" and dtype.kind in "iub":
        raise RequestError(f"input {name} is {datatype}, got fractional numbers")
    return name, array.reshape(shape).astype(dtype)


def check_datatype(name: str, datatype: str, spec: dict[str, Any]) -> None:
    """The Open Inference Protocol names a datatype: it must be the graph's (no casts)."""
    want = DTYPES[spec["dtype"]][1]
    if datatype != want:
        raise RequestError(f"input {name} is {want}, got {datatype}")
