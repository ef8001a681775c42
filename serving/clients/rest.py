"""A client of TF Serving's REST API (https://www.tensorflow.org/tfx/serving/api_rest):

    GET  /v1/models/NAME[/versions/N]             status
    GET  /v1/models/NAME[/versions/N]/metadata    metadata (the signature_defs)
    POST /v1/models/NAME[/versions/N]:predict     {"inputs": {name: nested lists}}

The standard library's http.client and json and numpy only: it runs where serving does,
with neither TensorFlow nor an HTTP package installed, and a blocking client needs no more.
"""

from __future__ import annotations

import base64
import http.client
import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

import numpy as np

from serving.clients.base import (
    DEFAULT_REST_URL,
    DEFAULT_TIMEOUT,
    answered,
    not_found,
    one_line,
    refused,
    timed_out,
)
from serving.errors import UserError

# The numpy type of each TensorFlow dtype name that metadata gives (DataType in types.proto).
TF_DTYPES = {
    "DT_FLOAT": np.float32,
    "DT_DOUBLE": np.float64,
    "DT_HALF": np.float16,
    "DT_INT8": np.int8,
    "DT_INT16": np.int16,
    "DT_INT32": np.int32,
    "DT_INT64": np.int64,
    "DT_UINT8": np.uint8,
    "DT_UINT16": np.uint16,
    "DT_UINT32": np.uint32,
    "DT_UINT64": np.uint64,
    "DT_BOOL": np.bool_,
    "DT_STRING": object,
}
SERVING_DEFAULT = "serving_default"
# A kept-alive connection the server has closed fails like this on its next request.
_STALE = (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected)


class RestClient:
    """TF Serving's REST API at ``url`` (``http://HOST:PORT``, optionally with a path
    prefix), each request answered within ``timeout`` seconds. One connection, kept alive;
    use a client from one thread at a time."""

    def __init__(self, url: str = DEFAULT_REST_URL, timeout: float = DEFAULT_TIMEOUT):
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        try:
            parts.port  # noqa: B018  (raises for a port that is not a number)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"--url {url!r} is not an HTTP address: give http://HOST:PORT")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self.timeout = timeout
        self._parts = parts
        self._connection: http.client.HTTPConnection | None = None
        self._output_dtypes: dict[tuple, dict[str, Any]] = {}

    def status(self, model: str, version: int | None = None) -> dict[str, Any]:
        """``GetModelStatusResponse``: each version's state (``AVAILABLE``, ...)."""
        return self._request("GET", _model_path(model, version), None, model, version)

    def metadata(self, model: str, version: int | None = None) -> dict[str, Any]:
        """``GetModelMetadataResponse``: ``metadata.signature_def.signature_def[NAME]``
        gives each signature's inputs and outputs (dtype, tensor_shape)."""
        path = _model_path(model, version) + "/metadata"
        return self._request("GET", path, None, model, version)

    def predict(
        self,
        model: str,
        inputs: Mapping[str, Any],
        version: int | None = None,
        signature_name: str | None = None,
    ) -> dict[str, np.ndarray]:
        """The outputs of ``model``'s signature (``serving_default`` unless named) on
        ``inputs``, sent in the columnar format; arrays of the signature's dtypes (once per
        model, from ``metadata``). NaN and infinity are refused: JSON cannot carry them."""
        body: dict[str, Any] = {
            "inputs": {name: _json_value(name, v) for name, v in inputs.items()}
        }
        if signature_name:
            body["signature_name"] = signature_name
        path = _model_path(model, version) + ":predict"
        answer = self._request("POST", path, body, model, version)
        dtypes = self._dtypes(model, version, signature_name or SERVING_DEFAULT)
        if not isinstance(answer, dict) or "outputs" not in answer:
            raise UserError(f"{self.url}{path} answered without outputs: {one_line(str(answer))}")
        outputs = answer["outputs"]
        if not isinstance(outputs, dict):  # one output: TF Serving leaves out its name
            if len(dtypes) != 1:
                raise UserError(
                    f"{self.url}{path} answered one unnamed output, but the signature's "
                    f"metadata names {len(dtypes)} outputs"
                )
            outputs = {next(iter(dtypes)): outputs}
        return {name: _array(value, dtypes.get(name)) for name, value in outputs.items()}

    def close(self) -> None:
        """Close the kept-alive connection (the next request opens another)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _dtypes(self, model: str, version: int | None, signature: str) -> dict[str, Any]:
        """The numpy type of each output of ``signature``, by name (None where unknown)."""
        key = (model, version, signature)
        if key not in self._output_dtypes:
            answer = self.metadata(model, version)
            try:
                signatures = answer["metadata"]["signature_def"]["signature_def"]
                outputs = signatures[signature]["outputs"]
            except (KeyError, TypeError):
                outputs = {}
            self._output_dtypes[key] = {
                name: TF_DTYPES.get(spec.get("dtype")) if isinstance(spec, dict) else None
                for name, spec in outputs.items()
            }
        return self._output_dtypes[key]

    def _request(self, method: str, path: str, body: Any, model: str, version: int | None) -> Any:
        data = None if body is None else json.dumps(body, allow_nan=False).encode()
        try:
            status, reason, payload = self._send(method, path, data)
        except ConnectionRefusedError:
            raise refused(self.url) from None
        except TimeoutError:
            raise timed_out(self.url, self.timeout) from None
        except OSError as error:
            raise refused(self.url, one_line(str(error) or type(error).__name__)) from None
        except http.client.HTTPException as error:
            detail = one_line(str(error) or type(error).__name__)
            raise UserError(f"{self.url} did not answer in HTTP: {detail}") from None
        text = payload.decode("utf-8", errors="replace")
        try:
            answer = json.loads(text)
        except ValueError:
            answer = None
        if status >= 400:
            message = answer.get("error") if isinstance(answer, dict) else None
            detail = one_line(str(message) if message is not None else text or "(no body)")
            if status == 404:
                raise not_found(self.url, model, version, detail, f"HTTP {status}")
            raise answered(self.url, f"HTTP {status} {reason}", detail)
        if answer is None:
            raise UserError(f"{self.url}{path} answered with no JSON: {one_line(text, 100)!r}")
        return answer

    def _send(self, method: str, path: str, data: bytes | None) -> tuple[int, str, bytes]:
        """One request on the kept-alive connection; a stale one is replaced once."""
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (1, 2):
            reused = self._connection is not None
            if self._connection is None:
                kind = http.client.HTTPSConnection if self._parts.scheme == "https" else None
                kind = kind or http.client.HTTPConnection
                self._connection = kind(
                    self._parts.hostname, self._parts.port, timeout=self.timeout
                )
            try:
                self._connection.request(method, self._parts.path + path, data, headers)
                response = self._connection.getresponse()
                payload = response.read()
            except _STALE:
                self.close()
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                self.close()
                raise
            if response.will_close:
                self.close()
            return response.status, response.reason, payload
        raise AssertionError("unreachable")


def _model_path(model: str, version: int | None) -> str:
    path = "/v1/models/" + urllib.parse.quote(model, safe="")
    return path if version is None else f"{path}/versions/{int(version)}"


def _json_value(name: str, value: Any) -> Any:
    """An input as JSON: numbers and booleans as such, strings as JSON strings (bytes that
    are not UTF-8 as ``{"b64": ...}``)."""
    array = np.asarray(value)
    if array.dtype.kind in "fc":
        if array.dtype.kind == "c":
            raise UserError(f"input {name} holds complex numbers: TF Serving's JSON has none")
        if not np.isfinite(array).all():
            raise UserError(
                f"input {name} holds NaN or infinity, which JSON cannot carry: "
                "give finite values only"
            )
    if array.dtype.kind in "OSU":
        return _strings(name, array.tolist())
    if array.dtype.kind not in "biuf":
        raise UserError(f"input {name} has dtype {array.dtype}, which JSON cannot carry")
    return array.tolist()


def _strings(name: str, value: Any) -> Any:
    if isinstance(value, list):
        return [_strings(name, item) for item in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, str):
        return value
    raise UserError(f"input {name} mixes strings with {type(value).__name__} values")


def _array(value: Any, dtype: Any) -> np.ndarray:
    """An output as an array of ``dtype`` (numpy's own choice when None); strings as ``str``
    objects, ``{"b64": ...}`` values as bytes."""
    if dtype is object or _holds_text(value):
        return np.array(_unpacked(value), dtype=object)
    return np.asarray(value, dtype=dtype)


def _holds_text(value: Any) -> bool:
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, str | dict)


def _unpacked(value: Any) -> Any:
    if isinstance(value, list):
        return [_unpacked(item) for item in value]
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    return value
