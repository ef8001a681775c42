"""The ``charlm`` task model and Triton's generate extension over it:
``POST /v2/models/charlm/generate`` answers the text in one JSON object, and
``.../generate_stream`` sends each character as a server-sent event as soon as it is sampled.

A request's characters are drawn in the server's thread pool in bursts of at most
``BURST_SECONDS``: between bursts the event loop writes what was sampled and sees whether the
client is still there. A client that leaves stops its generation at the next burst, and a long
generation holds no worker thread while other requests wait. While the server batches, the
characters come from the ``ContinuousGenerator`` (``serving.server.continuous``), which steps
every generation in flight together, a prefix one character a step; otherwise each request
draws its own ``serving.runtime.charlm.onnx_stream``, whose first burst feeds the whole prefix
(up to 100,000 characters) before it samples: the one burst that can run longer than
``BURST_SECONDS``. The text is ``serving.predict``'s for the same prefix and settings.

The Open Inference Protocol's ``infer`` and TF Serving's ``:predict`` answer every text whole
in one worker call: ``MAX_INFER_CHARACTERS`` caps what they generate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from aiohttp import web

from serving.errors import UserError
from serving.runtime.charlm import GENERATION_DEFAULTS, onnx_stream
from serving.runtime.decoding import Sampling
from serving.runtime.vocab import Vocabulary
from serving.server.batching import BatchOptions
from serving.server.continuous import ContinuousGenerator, Generation
from serving.server.metrics import Metrics
from serving.server.models import (
    VERSION,
    ObservedGraph,
    Registry,
    RequestError,
    TaskModel,
    padded,
    refusal,
    tensor_spec,
    texts,
)
from serving.server.tensors import dumps, parse_json

log = logging.getLogger("serving.server")

# A request's characters as they come (``close`` stops them): alone, or batched per step.
Pieces = Generator[str, None, None] | Generation
# What a stream's metrics count it as once its 200 has gone out (``request["outcome"]``,
# read by the server's middleware): nginx's 499 for a client that left first.
CLIENT_CLOSED = 499
BURST_SECONDS = 0.01  # longest a worker samples for one request before the loop looks again
# Characters one infer or :predict request may generate, all texts together (texts x length):
# such a request holds a worker thread until every text is whole (one lm_step run a
# character, no bursts), while the other requests wait for a thread. 10,000 is 50 texts at
# the default length; longer generations go to generate_stream, which runs in bursts.
MAX_INFER_CHARACTERS = 10_000
# The runtime's checks name serving.predict's flags; a request names its fields.
FIELDS = {
    "--prefix": "text_input",
    "--length": "parameter length",
    "--temperature": "parameter temperature",
    "--top-k": "parameter top_k",
}


class CharLM(TaskModel):
    """A charlm run as one model: text in, the characters sampled after it out, with its
    ``lm_step`` graph. Its Open Inference Protocol tensors are named as Triton's generate
    extension names its fields; ``stream`` answers the generate extension."""

    task = "charlm"
    inputs = (tensor_spec("text_input", "BYTES", -1),)
    outputs = (tensor_spec("text_output", "BYTES", -1), tensor_spec("unknown", "BYTES", -1, -1))
    parameters: ClassVar[dict[str, type]] = {
        "length": int,
        "temperature": float,
        "top_k": int,
        "seed": int,
    }

    def __init__(self, name: str, run_dir: Path, graphs: dict[str, ObservedGraph]):
        super().__init__(name, run_dir, graphs)
        self.step = graphs["lm_step"]
        self.vocab = Vocabulary.load(self.step.export_dir / self.step.runtime["vocab"])
        self.generator: ContinuousGenerator | None = None  # while the server batches

    def start_batching(self, options: BatchOptions | None) -> None:
        """Generate concurrent requests together, up to ``options.max_batch_size`` rows a
        step (``serving.server.continuous``)."""
        if options is not None:
            self.generator = ContinuousGenerator(
                self.step, self.vocab, options.max_batch_size, self.name
            )

    def stop_batching(self) -> None:
        if self.generator is not None:
            self.generator.close()

    def answer(
        self, inputs: dict[str, np.ndarray], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        """For each text of ``text_input``, its ``text_output`` and its ``unknown``
        characters (a row each, padded with ""); more than ``MAX_INFER_CHARACTERS`` to
        generate is a 400."""
        prefixes = texts("text_input", inputs["text_input"])
        length = parameters.get("length", GENERATION_DEFAULTS["length"])
        if len(prefixes) * length > MAX_INFER_CHARACTERS:
            raise RequestError(
                f"{len(prefixes)} texts x length {length} is {len(prefixes) * length} "
                f"characters to generate: at most {MAX_INFER_CHARACTERS} in one request; "
                f"stream longer texts from /v2/models/{self.name}/generate_stream"
            )
        answers = [self._pieces(text, parameters) for text in prefixes]
        return {
            "text_output": np.array(["".join(pieces) for pieces, _ in answers], dtype=object),
            "unknown": padded([unknown for _, unknown in answers]),
        }

    def stream(self, text: str, parameters: dict[str, Any]) -> tuple[Pieces, list[str]]:
        """The characters generated after ``text``, lazily, and its characters outside the
        vocabulary, for the request's ``parameters`` once they fit this model."""
        return self._pieces(text, self.checked_parameters(parameters))

    def _pieces(self, text: str, parameters: dict[str, Any]) -> tuple[Pieces, list[str]]:
        """``stream`` for checked ``parameters`` (``serving.predict``'s defaults for those not
        given); bad text or settings are a ``RequestError`` naming the field. Ranges are
        checked where ``serving.predict`` checks them."""
        if parameters.get("seed", 0) < 0:
            raise RequestError(f"parameter seed must be >= 0, got {parameters['seed']}")
        settings = Sampling(**{**GENERATION_DEFAULTS, **parameters})
        try:
            if self.generator is not None:
                return self.generator.stream(text, settings)
            return onnx_stream(self.step, self.vocab, text, settings)
        except UserError as error:
            message = str(error)
            for flag, field in FIELDS.items():
                message = message.replace(flag, field)
            raise RequestError(message) from None


def generate_request(body: bytes, streaming: bool) -> tuple[str, dict[str, Any]]:
    """The ``text_input`` and parameters of a generate request: the ``parameters`` object
    and any other field beside ``text_input`` (the extension passes those on as
    parameters). ``stream``, which the extension's examples send, must say the route it
    came to (``streaming``: generate_stream) and is left out."""
    request = parse_json(body)
    if not isinstance(request, dict) or "text_input" not in request:
        raise RequestError("the request must be a JSON object with a text_input string")
    text = request.pop("text_input")
    if not isinstance(text, str):
        raise RequestError(f"text_input must be a string, got {type(text).__name__}")
    parameters = request.pop("parameters", {})
    if not isinstance(parameters, dict):
        raise RequestError(f"parameters must be an object, got {type(parameters).__name__}")
    twice = sorted(parameters.keys() & request.keys())
    if twice:
        raise RequestError(f"parameter(s) {', '.join(twice)} given twice")
    parameters = {**parameters, **request}
    stream = parameters.pop("stream", streaming)
    if not isinstance(stream, bool):
        raise RequestError(f"stream must be true or false, got {stream!r}")
    if stream != streaming:
        route = "generate_stream" if stream else "generate"
        raise RequestError(f"stream {str(stream).lower()} asks for the {route} route")
    return text, parameters


def add_routes(
    app: web.Application, registry: Registry, executor: ThreadPoolExecutor, metrics: Metrics
) -> None:
    """``generate`` and ``generate_stream`` under /v2/models/NAME[/versions/1]/ (add them
    before the catch-all /v2/models/ route); ``metrics`` counts the streams open."""

    async def call(function, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, function, *args)

    async def start(request: web.Request, streaming: bool) -> tuple[CharLM, Pieces, list[str]]:
        if request.method != "POST":
            raise RequestError(f"{request.path} takes POST", 405)
        model = find(registry, request.match_info["name"], request.match_info.get("version"))
        text, parameters = generate_request(await request.read(), streaming)
        pieces, unknown = await call(model.stream, text, parameters)
        return model, pieces, unknown

    async def burst(request: web.Request, pieces: Pieces) -> list[str]:
        """The next characters; none once they end or the client has gone (then its
        generation stops)."""
        if request.transport is None:  # the connection is closed
            pieces.close()
            return []
        return await call(_draw, pieces)

    async def generate(request: web.Request) -> web.Response:
        model, pieces, unknown = await start(request, streaming=False)
        text = []
        while drawn := await burst(request, pieces):
            text += drawn
        if request.transport is None:
            _left(request, len(text))
        answer = {**_header(model), "text_output": "".join(text), "unknown": unknown}
        return web.Response(body=dumps(answer), content_type="application/json")

    async def generate_stream(request: web.Request) -> web.StreamResponse:
        model, pieces, unknown = await start(request, streaming=True)
        response = web.StreamResponse(headers={"Cache-Control": "no-cache"})
        response.content_type = "text/event-stream"
        response.charset = "utf-8"
        with metrics.stream(model.name):  # from the 200 on, until the stream ends
            await response.prepare(request)
            await send_events(request, response, model, pieces, unknown)
        return response

    async def send_events(
        request: web.Request,
        response: web.StreamResponse,
        model: CharLM,
        pieces: Pieces,
        unknown: list[str],
    ) -> None:
        """Each piece as an event as it comes, until the pieces end or the client leaves."""
        sent = 0
        try:
            while drawn := await burst(request, pieces):
                events = [_event(model, piece, sent + i, unknown) for i, piece in enumerate(drawn)]
                await response.write(b"".join(events))
                sent += len(drawn)
            if request.transport is None:
                _left(request, sent)
                return
            if not sent:  # nothing generated (length 0): one event says so
                await response.write(_event(model, "", 0, unknown))
            await response.write_eof()
        except ConnectionError:  # the client left while its characters were written
            pieces.close()
            _left(request, sent)
        except Exception as error:  # after the 200 went out: the extension's error event
            refused = refusal(error)
            request["outcome"] = refused.status
            with contextlib.suppress(ConnectionError):
                await response.write(b"data: " + dumps({"error": str(refused)}) + b"\n\n")
                await response.write_eof()

    for action, handler in (("generate", generate), ("generate_stream", generate_stream)):
        for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
            app.router.add_route("*", f"{prefix}/{action}", handler)


def find(registry: Registry, name: str, version: str | None) -> CharLM:
    """The generating model ``name``; another name is a 404, and so is a version but 1
    (``Registry.find_task``'s)."""
    if not isinstance(registry.tasks.get(name), CharLM):
        generating = [m.name for m in registry.tasks.values() if isinstance(m, CharLM)]
        raise RequestError(
            f"no model {name} generates text (generating: {', '.join(generating) or 'none'})",
            404,
        )
    return registry.find_task(name, version)


def _draw(pieces: Pieces) -> list[str]:
    """The pieces that come within ``BURST_SECONDS`` (at least one, unless they have ended)."""
    drawn, started = [], time.perf_counter()
    for piece in pieces:
        drawn.append(piece)
        if time.perf_counter() - started >= BURST_SECONDS:
            break
    return drawn


def _header(model: CharLM) -> dict[str, str]:
    return {"model_name": model.name, "model_version": VERSION}


def _event(model: CharLM, piece: str, index: int, unknown: list[str]) -> bytes:
    """Server-sent event ``index`` of a stream: a generate response holding ``piece``; the
    first also holds the prefix's ``unknown`` characters."""
    answer = {**_header(model), "text_output": piece}
    if index == 0:
        answer["unknown"] = unknown
    return b"data: " + dumps(answer) + b"\n\n"


def _left(request: web.Request, count: int) -> None:
    """Log that the client of ``request`` left after ``count`` characters, and count the
    request as failed with ``CLIENT_CLOSED``."""
    request["outcome"] = CLIENT_CLOSED
    log.info(f"{request.remote} left {request.path}: stopped after {count} characters")
