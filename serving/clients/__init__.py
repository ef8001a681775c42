"""Clients of TF Serving's REST and gRPC APIs, and ``python -m serving.clients``, which
predicts through a server as ``serving.predict`` does locally.

    from serving.clients import connect
    client = connect("http://127.0.0.1:8501")                 # or connect(url, "grpc")
    client.predict("sine_forecaster", {"window": window})     # {"next_value": array, ...}

The REST client needs the standard library and numpy only; the gRPC client needs TensorFlow
(serving/clients/requirements-grpc.txt) and is imported only when asked for.
"""

from __future__ import annotations

from serving.clients.base import (
    DEFAULT_GRPC_URL,
    DEFAULT_REST_URL,
    DEFAULT_TIMEOUT,
    ModelClient,
    NotFound,
)
from serving.clients.rest import RestClient
from serving.errors import UserError

PROTOCOLS = ("rest", "grpc")


def connect(
    url: str | None = None, protocol: str = "rest", timeout: float = DEFAULT_TIMEOUT
) -> ModelClient:
    """A client of the server at ``url`` (default: TF Serving's port of ``protocol``)."""
    if protocol == "rest":
        return RestClient(url or DEFAULT_REST_URL, timeout)
    if protocol == "grpc":
        from serving.clients.grpc import GrpcClient

        return GrpcClient(url or DEFAULT_GRPC_URL, timeout)
    raise UserError(f"protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")


__all__ = [
    "DEFAULT_GRPC_URL",
    "DEFAULT_REST_URL",
    "ModelClient",
    "NotFound",
    "RestClient",
    "connect",
]
