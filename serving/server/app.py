"""One process serving HTTP (aiohttp, on an asyncio event loop) and gRPC (grpcio's server),
with one thread pool running every request's protocol code and inference.

aiohttp and grpcio are the maintained Python servers for the two transports. One process
keeps one set of onnxruntime sessions and one shutdown path. grpcio's threaded server runs
its handlers in that pool directly; measured here (python -m benchmarks.serving), its
asyncio server, which needs a hop from the loop to the pool, answered a batch-1 sine forecast
at 1,000 requests/s against 1,270 for the threaded one. On the HTTP side the event loop only
moves bytes and hands each request to the pool, so a large request does not stall the others.

With batching on (``batching``), a graph runs at most ``workers`` calls at once, in the thread
of the request that finds it idle or in its batcher's threads; the pool has room for a full
batch of requests waiting for their call beside its workers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web

from serving.server import generate, open_inference, open_inference_grpc, tfserving_rest
from serving.server.batching import BatchOptions, GraphBatchers
from serving.server.metrics import Metrics, TimedPool, http_timing
from serving.server.models import Registry, RequestError, refusal
from serving.server.sequences import CAPACITY, IDLE_SECONDS, Sequences
from serving.server.tensors import dumps

log = logging.getLogger("serving.server")


class InFlight:
    """The HTTP requests being handled; ``idle`` is set while there are none."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def enter(self) -> None:
        self.count += 1
        self.idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self.idle.set()


@dataclass
class Settings:
    host: str = "127.0.0.1"
    http_port: int = 8501
    grpc_port: int = 8001
    workers: int = 2  # threads running requests (each onnxruntime call uses its own threads)
    max_request_bytes: int = 16 * 1024 * 1024
    shutdown_seconds: float = 10.0  # how long in-flight requests may finish after SIGTERM
    log_requests: bool = True
    sequence_idle_seconds: float = IDLE_SECONDS  # a kept sequence idle this long is dropped
    max_sequences: int = CAPACITY  # open sequences at most
    batching: BatchOptions | None = field(default_factory=BatchOptions)  # None: off


def http_app(
    registry: Registry,
    executor: ThreadPoolExecutor,
    settings: Settings,
    in_flight: InFlight,
    metrics: Metrics,
    kept: Sequences,
) -> web.Application:
    """The /v1 (TF Serving REST) and /v2 (Open Inference Protocol) routes, and /metrics;
    ``kept`` holds the sequences whose states the server keeps."""

    async def call(function: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, function, *args)

    async def v1(request: web.Request) -> web.Response:
        name, version, action = tfserving_rest.route(request.path)
        if action == "predict":
            if request.method != "POST":
                raise RequestError(f"{request.path} takes POST", 405)
            answer = await call(
                tfserving_rest.predict, registry, name, version, await request.read()
            )
        elif request.method != "GET":
            raise RequestError(f"{request.path} takes GET", 405)
        else:
            answer = getattr(tfserving_rest, action)(registry, name, version)
        return _json(answer)

    async def v2_models(request: web.Request) -> web.Response:
        name, version, action = open_inference.route(request.path)
        if action == "infer":
            if request.method != "POST":
                raise RequestError(f"{request.path} takes POST", 405)
            header = request.headers.get(open_inference.HEADER_LENGTH)
            body = await request.read()
            document, length = await call(
                open_inference.infer, registry, name, version, body, header, kept
            )
            headers = {open_inference.HEADER_LENGTH: str(length)} if length is not None else {}
            content_type = "application/octet-stream" if length is not None else "application/json"
            return web.Response(body=document, headers=headers, content_type=content_type)
        if request.method != "GET":
            raise RequestError(f"{request.path} takes GET", 405)
        metadata = open_inference.model_metadata(registry, name, version)
        return _json({"ready": True} if action == "ready" else metadata)

    async def live(request: web.Request) -> web.Response:
        return _json({"live": True})

    async def ready(request: web.Request) -> web.Response:
        return _json({"ready": True})

    async def server_metadata(request: web.Request) -> web.Response:
        return _json(open_inference.SERVER)

    app = web.Application(
        client_max_size=settings.max_request_bytes,
        middlewares=[_errors_and_log(settings, in_flight, metrics)],
    )
    app.router.add_route("*", "/v1/models/{tail:.+}", v1)
    app.router.add_get("/v2/health/live", live)
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2", server_metadata)
    generate.add_routes(app, registry, executor, metrics)  # before the catch-all below
    app.router.add_route("*", "/v2/models/{tail:.+}", v2_models)
    app.router.add_get("/metrics", metrics.handler())
    return app


def _json(document: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(document), status=status, content_type="application/json")


def _errors_and_log(settings: Settings, in_flight: InFlight, metrics: Metrics) -> Callable:
    """Every error as ``{"error": "..."}`` (TF Serving's shape, and the Open Inference
    Protocol's) with its status, one log line per request, the count of requests in flight,
    and the metrics of inference requests (by ``request["outcome"]`` where the handler set
    one: a stream's status once its 200 went out)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
        timing = http_timing()
        in_flight.enter()
        try:
            response = await handler(request)
        except web.HTTPRequestEntityTooLarge:
            message = (
                f"the request body is larger than the limit of {settings.max_request_bytes} bytes"
            )
            response = _json({"error": message}, 413)
        except web.HTTPException as error:  # no such route, a method it does not take
            response = _json({"error": f"{error.reason}: {request.path}"}, error.status)
        except Exception as error:  # the request's fault, or ours: say which, keep serving
            answer = refusal(error)
            response = _json({"error": str(answer)}, answer.status)
        finally:
            in_flight.leave()
        metrics.http_answered(request.path, request.get("outcome", response.status), timing)
        if settings.log_requests:
            elapsed = (time.perf_counter() - timing.started) * 1000
            log.info(
                f"{request.remote} {request.method} {request.path} {response.status} "
                f"{elapsed:.1f} ms"
            )
        return response

    return middleware


async def serve(registry: Registry, settings: Settings, ready: Callable[[int, int], None]) -> str:
    """Serve until SIGTERM or SIGINT, then let in-flight requests finish; ``ready`` gets the
    bound HTTP and gRPC ports. Returns the signal's name."""
    waiting = settings.batching.max_batch_size if settings.batching else 0
    executor = TimedPool(settings.workers + waiting, thread_name_prefix="infer")
    in_flight = InFlight()
    metrics = Metrics(registry)
    kept = Sequences(
        settings.sequence_idle_seconds,
        settings.max_sequences,
        counted=metrics.set_open_sequences,
    )
    runner = web.AppRunner(
        http_app(registry, executor, settings, in_flight, metrics, kept),
        access_log=None,  # the middleware logs one line per request
        handle_signals=False,
        shutdown_timeout=settings.shutdown_seconds,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.http_port, reuse_address=True)
    await site.start()
    http_port = runner.addresses[0][1]
    grpc_server = grpc.server(
        executor,
        options=[
            ("grpc.max_receive_message_length", settings.max_request_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    request_log = log.info if settings.log_requests else None
    grpc_server.add_generic_rpc_handlers(
        [open_inference_grpc.handler(registry, request_log, metrics, kept)]
    )
    address = f"{settings.host}:{settings.grpc_port}"
    try:
        grpc_port = grpc_server.add_insecure_port(address)
    except RuntimeError:  # grpcio's way of saying the port is taken
        grpc_port = 0
    if grpc_port == 0:
        await runner.cleanup()
        raise OSError(f"gRPC port {address} is taken or not ours")
    grpc_server.start()
    dropping = asyncio.create_task(kept.drop_idle())
    batchers = GraphBatchers(registry.graphs.values(), settings.batching, settings.workers)
    for model in registry.tasks.values():
        model.start_batching(settings.batching)
    stop = asyncio.Event()
    received = []
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda s=signum: (received.append(s), stop.set()))
    ready(http_port, grpc_port)
    await stop.wait()
    name = signal.Signals(received[0]).name
    log.info(
        f"stopping on {name}: no new connections; answering the {in_flight.count} HTTP "
        "request(s) in flight"
    )
    # Stop taking connections and let what is in flight finish (aiohttp's own shutdown would
    # drop a body still arriving), then close the connections and stop the workers. grpcio's
    # stop refuses new calls at once and lets running ones finish within the grace period.
    # Queued requests run at once rather than wait out the batching delay.
    batchers.flush()
    grpc_stopped = grpc_server.stop(settings.shutdown_seconds)
    for site in runner.sites:
        await site.stop()
    try:
        await asyncio.wait_for(in_flight.idle.wait(), settings.shutdown_seconds)
    except TimeoutError:
        log.warning(
            f"{in_flight.count} HTTP request(s) still in flight after "
            f"{settings.shutdown_seconds:g} s are cut off"
        )
    await runner.cleanup()
    dropping.cancel()
    await loop.run_in_executor(None, grpc_stopped.wait)
    executor.shutdown(wait=True)
    batchers.close()
    for model in registry.tasks.values():
        model.stop_batching()
    return name
