"""The Open Inference Protocol's gRPC service (``inference.GRPCInferenceService``, as Triton
and KServe serve it) over the same graphs as the HTTP side.

The messages are the protocol's generated classes that tritonclient ships. The handlers take
and give raw bytes (no deserializer in the method handler) so that a malformed message is
answered INVALID_ARGUMENT like every other bad request, not gRPC's generic INTERNAL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import numpy as np
from google.protobuf.message import DecodeError, Message
from tritonclient.grpc import service_pb2

from serving.server import open_inference, sequences
from serving.server.metrics import Metrics
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
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
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


def handler(
    registry: Registry,
    log: Callable[[str], None] | None,
    metrics: Metrics,
    kept: sequences.Sequences,
) -> grpc.GenericRpcHandler:
    """The service's method handlers (grpcio runs them in its server's thread pool); each
    call logs one line with ``log`` (None: no line), and ``ModelInfer`` calls count in
    ``metrics``. ``kept`` holds the states of the sequences whose step graphs' states the
    server keeps."""

    def method(request_type: type[Message], answer: Callable[[Message], Message]):
        name = answer.__name__

        def behavior(body: bytes, context: grpc.ServicerContext) -> bytes:
            started = time.perf_counter()
            code, status = grpc.StatusCode.OK, 200
            request = request_type()
            try:
                return _respond(request, answer, body)
            except Exception as error:  # the request's fault, or ours: say which
                refused = refusal(error)
                status = refused.status
                code = STATUS_CODES.get(status, grpc.StatusCode.INVALID_ARGUMENT)
                context.abort(code, str(refused))
            finally:
                if log is not None:
                    elapsed = (time.perf_counter() - started) * 1000
                    log(f"{context.peer()} grpc {name} {code.name} {elapsed:.1f} ms")
                if name == "ModelInfer":
                    model, version = request.model_name, request.model_version
                    metrics.grpc_answered(model, version, status, started)

        return grpc.unary_unary_rpc_method_handler(behavior)

    def ServerLive(request: Message) -> Message:
        return service_pb2.ServerLiveResponse(live=True)

    def ServerReady(request: Message) -> Message:
        return service_pb2.ServerReadyResponse(ready=True)

    def ModelReady(request: Message) -> Message:
        open_inference.model_metadata(registry, request.name, request.version)
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
        return _infer(registry, request, kept)

    methods = {
        "ServerLive": method(service_pb2.ServerLiveRequest, ServerLive),
        "ServerReady": method(service_pb2.ServerReadyRequest, ServerReady),
        "ModelReady": method(service_pb2.ModelReadyRequest, ModelReady),
        "ServerMetadata": method(service_pb2.ServerMetadataRequest, ServerMetadata),
        "ModelMetadata": method(service_pb2.ModelMetadataRequest, ModelMetadata),
        "ModelInfer": method(service_pb2.ModelInferRequest, ModelInfer),
    }
    return grpc.method_handlers_generic_handler(SERVICE, methods)


def _respond(request: Message, answer: Callable, body: bytes) -> bytes:
    try:
        request.ParseFromString(body)
    except DecodeError as error:
        raise RequestError(f"malformed {type(request).__name__}: {error}") from None
    return answer(request).SerializeToString()


def _infer(registry: Registry, request: Message, kept: sequences.Sequences) -> Message:
    datatypes, answerable, answer = open_inference.target(
        registry, request.model_name, request.model_version, kept
    )
    parameters = _parameter_values(request.parameters)
    answerable_outputs = answerable(parameters)
    wanted = [output.name for output in request.outputs]
    for name in wanted:
        open_inference.check_output(name, answerable_outputs)
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
    outputs = answer(inputs, parameters)
    response = service_pb2.ModelInferResponse(
        model_name=request.model_name, model_version=open_inference.VERSION, id=request.id
    )
    for name in wanted or outputs:
        array = outputs[name]
        response.outputs.add(name=name, datatype=datatype_of(array), shape=array.shape)
        response.raw_output_contents.append(binary_data(array))
    return response


def _parameter_values(parameters: Mapping[str, Message]) -> dict[str, Any]:
    """A request's ``InferParameter`` map as Python values (each holds one of bool, int64,
    uint64, double or string)."""
    values = {}
    for name, parameter in parameters.items():
        field = parameter.WhichOneof("parameter_choice")
        if field is not None:
            values[name] = getattr(parameter, field)
    return values


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
