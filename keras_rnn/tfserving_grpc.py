"""A client of TF Serving's gRPC API (``tensorflow_serving.apis``): ``PredictionService``'s
Predict and GetModelMetadata, ``ModelService``'s GetModelStatus. Tensors go through
``tf.make_tensor_proto`` and ``tf.make_ndarray``: tensorflow-serving-api's messages import
TensorFlow's, so this client lives on the TensorFlow side. ``serving.clients.connect(url,
"grpc")`` finds it through the ``keras_rnn.clients`` entry point (pyproject.toml), so the
serving side never imports it; TensorFlow starts when a client is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

import grpc
import numpy as np

from keras_rnn import quiet
from serving.clients.base import (
    DEFAULT_GRPC_URL,
    DEFAULT_TIMEOUT,
    answered,
    grpc_unavailable,
    not_found,
    one_line,
    refused,
    text_array,
    timed_out,
)
from serving.errors import UserError

SERVING_DEFAULT = "serving_default"


class GrpcClient:
    """TF Serving's gRPC API at ``url`` (``HOST:PORT``, or ``grpc://HOST:PORT``), each call
    answered within ``timeout`` seconds."""

    def __init__(self, url: str = DEFAULT_GRPC_URL, timeout: float = DEFAULT_TIMEOUT):
        target = url.removeprefix("grpc://")
        if "://" in target or ":" not in target:
            raise UserError(f"--url {url!r} is not a gRPC address: give HOST:PORT")
        self.url, self.timeout = target, timeout
        self._tf, self._apis = _tensorflow()
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        self._channel = grpc.insecure_channel(target, options=options)
        self._predictions = self._apis.prediction_service_pb2_grpc.PredictionServiceStub(
            self._channel
        )
        self._models = self._apis.model_service_pb2_grpc.ModelServiceStub(self._channel)

    def status(self, model: str, version: int | None = None) -> dict[str, Any]:
        """``GetModelStatusResponse`` as TF Serving's REST API gives it."""
        request = self._apis.get_model_status_pb2.GetModelStatusRequest()
        _spec(request.model_spec, model, version)
        response = self._call(self._models.GetModelStatus, request, model, version)
        return _as_dict(response, defaults=True)

    def metadata(self, model: str, version: int | None = None) -> dict[str, Any]:
        """``GetModelMetadataResponse`` with its ``signature_def`` unpacked, as TF Serving's
        REST API gives it."""
        messages = self._apis.get_model_metadata_pb2
        request = messages.GetModelMetadataRequest(metadata_field=["signature_def"])
        _spec(request.model_spec, model, version)
        response = self._call(self._predictions.GetModelMetadata, request, model, version)
        signatures = messages.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        return {
            "model_spec": _as_dict(response.model_spec),
            "metadata": {"signature_def": _as_dict(signatures)},
        }

    def predict(
        self,
        model: str,
        inputs: Mapping[str, Any],
        version: int | None = None,
        signature_name: str | None = None,
    ) -> dict[str, np.ndarray]:
        """The outputs of ``model``'s signature (``serving_default`` unless named) on
        ``inputs``; strings come back as ``str`` objects."""
        request = self._apis.predict_pb2.PredictRequest()
        _spec(request.model_spec, model, version, signature_name or SERVING_DEFAULT)
        for name, value in inputs.items():
            try:
                tensor = self._tf.make_tensor_proto(np.asarray(value))
            except (TypeError, ValueError) as error:
                raise UserError(
                    f"input {name} cannot be a tensor: {one_line(str(error))}"
                ) from None
            request.inputs[name].CopyFrom(tensor)
        response = self._call(self._predictions.Predict, request, model, version)
        outputs = {name: self._tf.make_ndarray(tensor) for name, tensor in response.outputs.items()}
        return {
            name: text_array(array) if array.dtype == object else array
            for name, array in outputs.items()
        }

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def _call(self, method: Any, request: Any, model: str, version: int | None) -> Any:
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise self._error(error, model, version) from None

    def _error(self, error: grpc.RpcError, model: str, version: int | None) -> UserError:
        """The one-line error for a failed call, as the REST client words it."""
        code, detail = error.code(), one_line(error.details() or "")
        if code == grpc.StatusCode.NOT_FOUND:
            return not_found(self.url, model, version, detail, code.name)
        if code == grpc.StatusCode.UNAVAILABLE:
            refusal = "connection refused" if "refused" in detail.lower() else detail
            return refused(self.url, refusal)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return timed_out(self.url, self.timeout)
        if code == grpc.StatusCode.UNIMPLEMENTED:
            detail += " — is it TF Serving's gRPC API?"
        return answered(self.url, code.name, detail)


def _spec(spec: Any, model: str, version: int | None, signature: str | None = None) -> None:
    spec.name = model
    if version is not None:
        spec.version.value = int(version)
    if signature:
        spec.signature_name = signature


def _as_dict(message: Any, defaults: bool = False) -> dict[str, Any]:
    from google.protobuf import json_format

    return json_format.MessageToDict(
        message, always_print_fields_with_no_presence=defaults, preserving_proto_field_name=True
    )


def _tensorflow() -> tuple[ModuleType, Any]:
    """TensorFlow, started quietly (``keras_rnn.quiet``), and ``tensorflow_serving.apis``."""
    try:
        tensorflow = quiet.start_tensorflow()
        from tensorflow_serving import apis
        from tensorflow_serving.apis import (  # noqa: F401  (loads them into ``apis``)
            get_model_metadata_pb2,
            get_model_status_pb2,
            model_service_pb2_grpc,
            predict_pb2,
            prediction_service_pb2_grpc,
        )
    except ImportError as error:
        raise UserError(grpc_unavailable(error.name)) from None
    return tensorflow, apis
