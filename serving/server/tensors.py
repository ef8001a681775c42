"""Request bodies to numpy and numpy to response bodies, as both protocols spell them."""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
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
TF_BY_DATATYPE = {v2: tf for tf, v2 in DTYPES.values()}
DATATYPES = [*NUMPY_BY_DATATYPE, "BYTES"]  # the datatypes a request's input may have
MAX_DIMENSIONS = 64  # numpy's most dimensions of an array (NPY_MAXDIMS since numpy 2)


def datatype_of(array: np.ndarray) -> str:
    """The Open Inference Protocol's datatype of an output (an object array: BYTES)."""
    return "BYTES" if array.dtype == object else DTYPES[array.dtype.name][1]


def binary_data(array: np.ndarray) -> bytes:
    """An output as the binary extension and gRPC's raw contents carry it: little-endian
    values, or for BYTES each element's length (4 bytes, little-endian) then its bytes."""
    if array.dtype != object:
        return np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
    elements = [_utf8(element) for element in array.ravel()]
    return b"".join(struct.pack("<I", len(element)) + element for element in elements)


def _utf8(element: str | bytes) -> bytes:
    return element.encode("utf-8") if isinstance(element, str) else element


def bytes_elements(name: str, data: bytes, count: int) -> np.ndarray:
    """``count`` BYTES elements serialized as ``binary_data`` writes them, as an object array
    of ``bytes``; data that does not hold exactly ``count`` elements is a 400."""
    elements, offset = [], 0
    while offset < len(data) and len(elements) < count:
        if offset + 4 > len(data):
            break
        (length,) = struct.unpack_from("<I", data, offset)
        if offset + 4 + length > len(data):
            break
        elements.append(data[offset + 4 : offset + 4 + length])
        offset += 4 + length
    if len(elements) != count or offset != len(data):
        raise RequestError(
            f"input {name}: {len(data)} bytes do not hold {count} BYTES elements (each a "
            "4-byte little-endian length, then that many bytes)"
        )
    array = np.empty(count, dtype=object)
    array[:] = elements
    return array


def string_array(name: str, value: Any) -> np.ndarray:
    """JSON strings (nested lists of them) as an object array of their UTF-8 bytes; TF
    Serving's ``{"b64": ...}`` gives bytes that need not be text. Ragged lists, and lists
    nested deeper than ``MAX_DIMENSIONS``, are a 400."""
    shape = []
    node = value
    while isinstance(node, list):
        shape.append(len(node))
        if not node:
            break
        node = node[0]
    check_rank(name, shape)
    flat: list[bytes] = []
    _flatten_strings(name, value, shape, flat)
    array = np.empty(len(flat), dtype=object)
    array[:] = flat
    return array.reshape(shape)


def _flatten_strings(name: str, node: Any, shape: list[int], flat: list[bytes]) -> None:
    if not shape:
        flat.append(_string_bytes(name, node))
        return
    if not isinstance(node, list) or len(node) != shape[0]:
        raise RequestError(
            f"input {name} is ragged or nested unevenly: every row must have the same shape"
        )
    for item in node:
        _flatten_strings(name, item, shape[1:], flat)


def _string_bytes(name: str, value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except binascii.Error:
            raise RequestError(f"input {name} holds b64 that is not base64") from None
    raise RequestError(f"input {name} must hold strings, got {_json_kind(value)}")


def _json_kind(value: Any) -> str:
    return "a list" if isinstance(value, list) else type(value).__name__


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
    if datatype not in DATATYPES:
        raise RequestError(
            f"input {name}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}"
        )
    count = value_count(name, shape)
    if binary is not None:
        if datatype == "BYTES":
            return name, bytes_elements(name, binary, count).reshape(shape)
        dtype = NUMPY_BY_DATATYPE[datatype]
        if len(binary) != dtype.itemsize * count:
            raise RequestError(
                f"input {name}: {len(binary)} bytes of binary data do not hold shape {shape} "
                f"of {datatype}"
            )
        return name, np.frombuffer(binary, dtype.newbyteorder("<")).reshape(shape)
    if "data" not in tensor:
        raise RequestError(f"input {name} has no data")
    array = json_array(name, tensor["data"], datatype)
    if array.size != count:
        raise RequestError(f"input {name}: {array.size} values do not fill shape {shape}")
    return name, array.reshape(shape)


def json_array(name: str, value: Any, datatype: str) -> np.ndarray:
    """A JSON value (nested lists of numbers, or of strings for BYTES) as an array of the
    Open Inference Protocol's ``datatype``; a value of another kind is a 400."""
    if datatype == "BYTES":
        return string_array(name, value)
    dtype = NUMPY_BY_DATATYPE[datatype]
    array = as_array(name, value)
    if array.dtype.kind == "f" and dtype.kind in "iub":
        raise RequestError(f"input {name} is {datatype}, got fractional numbers")
    if (array.dtype.kind == "b") != (dtype.kind == "b"):
        given = "booleans" if array.dtype.kind == "b" else "numbers"
        raise RequestError(f"input {name} is {datatype}, got {given}")
    return cast(name, array, dtype)


def value_count(name: str, shape: list[int]) -> int:
    """How many values an input of ``shape`` holds. A negative size is a 400, and so are a
    size of 0 (nothing to compute on; numpy cannot give one huge sizes) and more than
    ``MAX_DIMENSIONS`` sizes."""
    check_rank(name, shape)
    if any(size < 0 for size in shape):
        raise RequestError(f"input {name}: shape {shape} has a negative size")
    if 0 in shape:
        raise RequestError(f"input {name} is empty (shape {tuple(shape)})")
    return math.prod(shape)


def check_rank(name: str, shape: list[int]) -> None:
    """An input of more than ``MAX_DIMENSIONS`` dimensions is a 400 (numpy holds none)."""
    if len(shape) > MAX_DIMENSIONS:
        raise RequestError(
            f"input {name} has {len(shape)} dimensions: at most {MAX_DIMENSIONS} are supported"
        )


def check_datatype(name: str, datatype: str, want: str | None) -> None:
    """The Open Inference Protocol names an input's datatype: it must be the model's,
    ``want`` (no casts; None: the model has no such input, which is refused by name later)."""
    if want is not None and datatype != want:
        raise RequestError(f"input {name} is {want}, got {datatype}")
