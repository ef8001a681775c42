"""Request bodies to numpy and numpy to response bodies, as both protocols spell them."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from serving.runtime.graph import check_range
from serving.server.models import NESTED_TOO_DEEPLY, RequestError

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
    no NaN: Python's parser would accept it, and a forecast of NaN is no answer), and so are
    arrays nested past Python's recursion limit and integers of more than 4,300 digits."""

    def refuse(constant: str) -> None:
        raise RequestError(f"{constant} is not a number the graphs take (JSON has no {constant})")

    try:
        return json.loads(body, parse_constant=refuse)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, too many digits
        raise RequestError(f"malformed JSON: {error}") from None
    except RecursionError:
        raise RequestError(NESTED_TOO_DEEPLY) from None


def dumps(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def as_array(name: str, value: Any) -> np.ndarray:
    """A JSON value (nested lists of numbers) as an array; ragged lists (or lists nested
    deeper than numpy's 64 dimensions) are a 400."""
    if isinstance(value, dict):
        raise RequestError(f"input {name} must be a list of numbers, got an object")
    try:
        array = np.asarray(value)
    except ValueError:
        raise RequestError(
            f"input {name} is ragged or nested too deeply: every row must have the same shape"
        ) from None
    if array.dtype.kind not in "biuf":
        raise RequestError(f"input {name} must hold numbers, got {_kind(array)}")
    return array


def _kind(array: np.ndarray) -> str:
    objects = "mixed values, nulls or integers beyond 64 bits"
    return {"U": "strings", "O": objects}.get(array.dtype.kind, str(array.dtype))


def cast(name: str, array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` as ``dtype``; an integer that ``dtype`` cannot hold is a ``UserError`` (a
    cast would wrap it)."""
    check_range(name, array, dtype)
    return array.astype(dtype)


def v2_array(tensor: dict[str, Any], binary: bytes | None = None) -> tuple[str, np.ndarray]:
    """An Open Inference Protocol input tensor (JSON ``data``, or the binary extension's
    bytes) as a named array of its declared datatype and shape."""
    if not isinstance(tensor, dict):
        raise RequestError("each input must be an object with name, shape, datatype and data")
    name, shape, datatype = tensor.get("name"), tensor.get("shape"), tensor.get("datatype")
    if not isinstance(name, str):
        raise RequestError("an input has no name")
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
        raise RequestError(f"input {name}: shape must be a list of sizes, got {shape!r}")
    dtype = NUMPY_BY_DATATYPE.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise RequestError(
            f"input {name}: datatype {datatype!r} is not one of {', '.join(NUMPY_BY_DATATYPE)}"
        )
    count = value_count(name, shape)
    if binary is not None:
        if len(binary) != dtype.itemsize * count:
            raise RequestError(
                f"input {name}: {len(binary)} bytes of binary data do not hold shape {shape} "
                f"of {datatype}"
            )
        return name, np.frombuffer(binary, dtype.newbyteorder("<")).reshape(shape)
    if "data" not in tensor:
        raise RequestError(f"input {name} has no data")
    array = as_array(name, tensor["data"])
    if array.size != count:
        raise RequestError(f"input {name}: {array.size} values do not fill shape {shape}")
    if array.dtype.kind == "f" and dtype.kind in "iub":
        raise RequestError(f"input {name} is {datatype}, got fractional numbers")
    if (array.dtype.kind == "b") != (dtype.kind == "b"):
        given = "booleans" if array.dtype.kind == "b" else "numbers"
        raise RequestError(f"input {name} is {datatype}, got {given}")
    return name, cast(name, array.reshape(shape), dtype)


def value_count(name: str, shape: list[int]) -> int:
    """How many values an input of ``shape`` holds. A negative size is a 400, and so is a
    size of 0 (nothing to compute on; numpy cannot give one huge sizes)."""
    if any(size < 0 for size in shape):
        raise RequestError(f"input {name}: shape {shape} has a negative size")
    if 0 in shape:
        raise RequestError(f"input {name} is empty (shape {tuple(shape)})")
    return math.prod(shape)


def check_datatype(name: str, datatype: str, spec: dict[str, Any]) -> None:
    """The Open Inference Protocol names a datatype: it must be the graph's (no casts)."""
    want = DTYPES[spec["dtype"]][1]
    if datatype != want:
        raise RequestError(f"input {name} is {want}, got {datatype}")
