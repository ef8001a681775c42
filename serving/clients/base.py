"""What the REST and gRPC clients share: their interface and their one-line errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from serving.errors import UserError

DEFAULT_REST_URL = "http://127.0.0.1:8501"  # TF Serving's default REST port
DEFAULT_GRPC_URL = "127.0.0.1:8500"  # and its default gRPC port
DEFAULT_TIMEOUT = 30.0  # seconds for one request


@runtime_checkable
class ModelClient(Protocol):
    """A client of TF Serving's API. ``status`` and ``metadata`` return the JSON form of
    ``GetModelStatusResponse`` and ``GetModelMetadataResponse`` (proto field names);
    ``predict`` returns each output as a numpy array (strings as ``str`` objects). Every
    failure is a ``UserError`` of one line; an unknown model or version is a ``NotFound``."""

    url: str

    def status(self, model: str, version: int | None = None) -> dict[str, Any]: ...

    def metadata(self, model: str, version: int | None = None) -> dict[str, Any]: ...

    def predict(
        self,
        model: str,
        inputs: Mapping[str, Any],
        version: int | None = None,
        signature_name: str | None = None,
    ) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


class NotFound(UserError):
    """The server has no such model, or not that version of it."""


def not_found(url: str, model: str, version: int | None, detail: str, status: str) -> NotFound:
    """The error for an unknown model or version, with the server's own message."""
    which = f"model {model!r}" + (f" version {version}" if version is not None else "")
    return NotFound(f"{which} is not served at {url}: {detail} ({status})")


def refused(url: str, detail: str = "connection refused") -> UserError:
    """The error for a server that cannot be reached."""
    return UserError(f"cannot connect to {url}: {detail} — is the server running?")


def timed_out(url: str, seconds: float) -> UserError:
    """The error for a request left unanswered for ``seconds``."""
    return UserError(f"no answer from {url} within {seconds:g} s (timeout): is it overloaded?")


def answered(url: str, status: str, detail: str) -> UserError:
    """The error for any other refusal: the server's status and its own message."""
    return UserError(f"the server at {url} answered {status}: {detail}")


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def text_array(values: Any) -> np.ndarray:
    """String values (nested lists, or an array of ``bytes``) as an object array of ``str``;
    bytes that are not UTF-8 stay bytes."""
    array = np.array(values, dtype=object)
    return np.vectorize(_decoded, otypes=[object])(array) if array.size else array


def _decoded(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def grpc_unavailable(missing: str | None) -> str:
    """Why the gRPC client cannot be made here: ``missing`` is the module that failed."""
    return (
        f"the gRPC client needs TensorFlow and tensorflow-serving-api ({missing} is missing): "
        "pip install -r serving/clients/requirements-grpc.txt, or use the REST API"
    )
