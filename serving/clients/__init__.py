"""Clients of TF Serving's REST and gRPC APIs, and ``python -m serving.clients``, which
predicts through a server as ``serving.predict`` does locally.

    from serving.clients import connect, translate_with
    client = connect("http://127.0.0.1:8501")                 # or connect(url, "grpc")
    client.predict("sine_forecaster", {"window": window})     # {"next_value": array, ...}
    translate_with(client, ["3 March 2021"])                  # a task model: no run needed

The REST client needs the standard library and numpy only; the gRPC client needs TensorFlow
(serving/clients/requirements-grpc.txt) and is the full project's (keras_rnn.tfserving_grpc),
found through an entry point when asked for.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from serving.clients.base import (
    DEFAULT_GRPC_URL,
    DEFAULT_REST_URL,
    DEFAULT_TIMEOUT,
    ModelClient,
    NotFound,
    grpc_unavailable,
)
from serving.clients.rest import RestClient
from serving.clients.tasks import forecast_with, generate_with, tag_with, translate_with
from serving.errors import UserError

PROTOCOLS = ("rest", "grpc")


def connect(
    url: str | None = None, protocol: str = "rest", timeout: float = DEFAULT_TIMEOUT
) -> ModelClient:
    """A client of the server at ``url`` (default: TF Serving's port of ``protocol``)."""
    if protocol == "rest":
        return RestClient(url or DEFAULT_REST_URL, timeout)
    if protocol == "grpc":
        return _grpc_client()(url or DEFAULT_GRPC_URL, timeout)
    raise UserError(f"protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")


def _grpc_client() -> type:
    """TF Serving's gRPC client. It needs TensorFlow, so it lives on the training side
    (``keras_rnn.tfserving_grpc``), which registers it as the ``grpc`` entry point of group
    ``keras_rnn.clients``: an installed plugin, which this TensorFlow-free package never
    imports by name."""
    found = entry_points(group="keras_rnn.clients", name="grpc")
    if not found:
        raise UserError(grpc_unavailable("keras-rnn"))
    try:
        return next(iter(found)).load()
    except ImportError as error:
        raise UserError(grpc_unavailable(error.name)) from None


__all__ = [
    "DEFAULT_GRPC_URL",
    "DEFAULT_REST_URL",
    "ModelClient",
    "NotFound",
    "RestClient",
    "connect",
    "forecast_with",
    "generate_with",
    "tag_with",
    "translate_with",
]
