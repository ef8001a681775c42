"""The Open Inference Protocol's gRPC service (``inference.GRPCInferenceService``, as Triton
and KServe serve it) over the same graphs as the HTTP side.

The messages are the protocol's generated classes that tritonclient ships. The handlers take
and give raw bytes (no deserializer in the method handler) so that a malformed message is
answered INVALID_ARGUMENT like every other bad request, not gRPC's generic INTERNAL.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import DecodeError, Message
from tritonclient.grpc import service_pb2

from serving.server import open_inference
from serving.server.models import Registry, RequestError, refusal
from serving.server.tensors import (
    DATATYPES,
    NUMPY_BY_DATATYPE,
    binary_data,
    bytes_elements,
    cast,
    check_datatype,
    datatype_of,
    value_count,
)

SERVICE = "inference.GRPCInferenceService"
STATUS_CODES = {
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    500: grpc.StatusCode.INTERNAL,
}
# The typed ``contents`` field that holds each datatype when raw bytes are not used.
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def handler(registry: Registry, log: Callable[[str], None] | None) -> grpc.GenericRpcHandler:
    """The service's method handlers (grpcio runs them in its server's thread pool); each
    call logs one line with ``log`` (None: no line)."""

    def method(request_type: type[Message], answer: Callable[[Message], Message]):
        name = answer.__name__

        def behavior(body: bytes, context: grpc.ServicerContext) -> bytes:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return _respond(request_type, answer, body)
            except Exception as error:  # the request's fault, or ours: say which
                refused = refusal(error)
                code = STATUS_CODES.get(refused.status, grpc.StatusCode.INVALID_ARGUMENT)
                context.abort(code, str(refused))
            finally:
                if log is not None:
                    elapsed = (time.perf_counter() - started) * 1000
                    log(f"{context.peer()} grpc {name} {code.name} {elapsed:.1f} ms")

        return grpc.unary_unary_rpc_method_handler(behavior)

    def ServerLive(request: Message) -> Message:
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(request: Message) -> Message:
        return service_pb2.ServerReadyResponse(ready=True)

    def ModelReady(request: Message) -> Message:
        open_inference.target(registry, request.name, request.version)
        return service_pb2.ModelReadyResponse(ready=True)

    def ServerMetadata(request: Message) -> Message:
        return service_pb2.ServerMetadataResponse(**open_inference.SERVER)

    def ModelMetadata(request: Message) -> Message:
        found = open_inference.model_metadata(registry, request.name, request.version)
        response = service_pb2.ModelMetadataResponse(
            name=found["name"], versions=found["versions"], platform=found["platform"]
        )
        for side in ("inputs", "outputs"):
            for tensor in found[side]:
                getattr(response, side).add(**tensor)
        return response

    def ModelInfer(request: Message) -> Message:
        return _infer(registry, request)

    methods = {
        "ServerLive": method(service_pb2.ServerLiveRequest, ServerLive),
        "ServerReady": method(service_pb2.ServerReadyRequest, ServerReady),
        "ModelReady": method(service_pb2.ModelReadyRequest, ModelReady),
        "ServerMetadata": method(service_pb2.ServerMetadataRequest, ServerMetadata),
        "ModelMetadata": method(service_pb2.ModelMetadataRequest, ModelMetadata),
        "ModelInfer": method(service_pb2.ModelInferRequest, ModelInfer),
    }
    return grpc.method_handlers_generic_handler(SERVICE, methods)


def _respond(request_type: type[Message], answer: Callable, body: bytes) -> bytes:
    request = request_type()
    try:
        request.ParseFromString(body)
    except DecodeError as error:
        raise RequestError(f"malformed {request_type.__name__}: {error}") from None
    return answer(request).SerializeToString()


def _infer(registry: Registry, request: Message) -> Message:
    datatypes, answer = open_inference.target(registry, request.model_name, request.model_version)
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise RequestError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
    inputs = {}
    for index, tensor in enumerate(request.inputs):
        array = _array(tensor, raw[index] if raw else None)
        check_datatype(tensor.name, tensor.datatype, datatypes.get(tensor.name))
        if tensor.name in inputs:
            raise RequestError(f"input {tensor.name} is given twice")
        inputs[tensor.name] = array
    outputs = answer(inputs, _parameters(request.parameters))
    wanted = [output.name for output in request.outputs] or list(outputs)
    response = service_pb2.ModelInferResponse(
        model_name=request.model_name, model_version=open_inference.VERSION, id=request.id
    )
    for name in wanted:
        if name not in outputs:
            raise RequestError(f"unknown output {name!r} (outputs: {', '.join(outputs)})")
        array = outputs[name]
        response.outputs.add(name=name, datatype=datatype_of(array), shape=array.shape)
        response.raw_output_contents.append(binary_data(array))
    return response


def _parameters(parameters: Any) -> dict[str, Any]:
    """A request's ``InferParameter`` map as plain values."""
    return {
        name: getattr(parameter, parameter.WhichOneof("parameter_choice"))
        for name, parameter in parameters.items()
        if parameter.WhichOneof("parameter_choice") is not None
    }


def _array(tensor: Message, raw: bytes | None) -> np.ndarray:
    if tensor.datatype not in DATATYPES:
        raise RequestError(
            f"input {tensor.name}: datatype {tensor.datatype!r} is not one of "
            f"{', '.join(DATATYPES)}"
        )
    shape = list(tensor.shape)
    count = value_count(tensor.name, shape)
    if raw is not None and tensor.datatype == "BYTES":
        return bytes_elements(tensor.name, raw, count).reshape(shape)
    if raw is not None:
        dtype = NUMPY_BY_DATATYPE[tensor.datatype]
        if len(raw) != dtype.itemsize * count:
            raise RequestError(
                f"input {tensor.name}: {len(raw)} raw bytes do not hold shape {shape} "
                f"of {tensor.datatype}"
            )
        return np.frombuffer(raw, dtype.newbyteorder("<")).reshape(shape)
    field = CONTENTS.get(tensor.datatype)
    values = getattr(tensor.contents, field) if field else []
    if len(values) != count:
        raise RequestError(f"input {tensor.name}: {len(values)} values do not fill shape {shape}")
    if tensor.datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return array.reshape(shape)
    dtype = NUMPY_BY_DATATYPE[tensor.datatype]
    return cast(tensor.name, np.asarray(values).reshape(shape), dtype)
