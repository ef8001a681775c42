"""python -m benchmarks.serving RUN_DIR: bounded load on python -m serving.server over loopback.

Starts a server on the run's export (TensorFlow is not needed) for each --batching setting
(default: dynamic batching off, and on), then for each graph, protocol and concurrency, each
server in turn: N clients (asyncio tasks of this process) send a fixed number of requests in
total, each the same batch of inputs shaped by the manifest. Prints throughput, p50/p95/p99
latency and errors beside the graph called in-process with onnxruntime (the protocol's
overhead as a ratio of the p50s). On a translate run, the task model `translate` too: each
request one sentence of the run's test split, in turn, beside the SavedModel `translate`
signature called in-process by as many threads (what TF Serving's engine does per request;
this needs TensorFlow here, never in the server), and whether every server and the signature
gave the same translations. On a charlm run, the task model `charlm` too: each request a
generate of --length characters (a prefix in turn, temperature 1, a seed of its own), beside
serving.predict's generation in-process, and whether every server generated serving.predict's
texts when 64 requests come from the most concurrent clients. Client and servers share this
machine's cores: compare ratios within one run, not absolute numbers across machines.

    python -m benchmarks.serving runs/demo-sine-lstm --requests 2000 --concurrency 1,4,16,64
    python -m benchmarks.serving runs/translate-gru --no-graphs --requests 1000
    python -m benchmarks.serving runs/charlm-gru --no-graphs --requests 500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc
import numpy as np
from tritonclient.grpc import service_pb2

from serving import cli
from serving.errors import UserError
from serving.progress import Progress
from serving.runtime import load_graph
from serving.runtime.charlm import onnx_generate
from serving.runtime.decoding import Sampling
from serving.runtime.vocab import Vocabulary
from serving.server.tensors import DTYPES

PROTOCOLS = ("TF Serving REST", "v2 HTTP (binary)", "v2 gRPC")
BATCHING = ("off", "on")
HEADER = (
    "| graph | input | protocol | batching | clients | requests/s | p50 ms | p95 ms | p99 ms "
    "| errors | server CPU ms | p50 vs in-process |\n"
    "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def example_inputs(specs: list[dict], batch: int, steps: int) -> dict[str, np.ndarray]:
    """Inputs shaped by the manifest (None: batch, then steps): normal noise for floats,
    id 4 for integers (a real token in every vocabulary here)."""
    rng = np.random.default_rng(0)
    feed = {}
    for spec in specs:
        free = iter((batch, steps))
        shape = [size if size is not None else next(free, 1) for size in spec["shape"]]
        dtype = np.dtype(spec["dtype"])
        feed[spec["name"]] = (
            rng.normal(size=shape).astype(dtype) if dtype.kind == "f" else np.full(shape, 4, dtype)
        )
    return feed


def senders(
    session: aiohttp.ClientSession, channel: grpc.aio.Channel, url: str, name: str, feed: dict
) -> dict[str, Callable[[], Awaitable[bool]]]:
    """One request of each protocol; each returns whether the answer was a success."""
    rest_body = json.dumps({"inputs": {key: value.tolist() for key, value in feed.items()}})
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": key,
                    "shape": list(value.shape),
                    "datatype": DTYPES[value.dtype.name][1],
                    "parameters": {"binary_data_size": value.nbytes},
                }
                for key, value in feed.items()
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    v2_body = header + b"".join(value.tobytes() for value in feed.values())
    v2_headers = {"Inference-Header-Content-Length": str(len(header))}
    message = service_pb2.ModelInferRequest(model_name=name)
    for key, value in feed.items():
        message.inputs.add(name=key, datatype=DTYPES[value.dtype.name][1], shape=value.shape)
        message.raw_input_contents.append(value.tobytes())
    infer = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=service_pb2.ModelInferResponse.FromString,
    )

    async def rest() -> bool:
        async with session.post(f"{url}/v1/models/{name}:predict", data=rest_body) as response:
            await response.read()
            return response.status == 200

    async def v2_http() -> bool:
        path = f"{url}/v2/models/{name}/infer"
        async with session.post(path, data=v2_body, headers=v2_headers) as response:
            await response.read()
            return response.status == 200

    async def v2_grpc() -> bool:
        try:
            await infer(message)
        except grpc.aio.AioRpcError:
            return False
        return True

    return dict(zip(PROTOCOLS, (rest, v2_http, v2_grpc), strict=True))


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    send: Callable[[], Awaitable[bool]], clients: int, requests: int, server_pid: int
) -> dict:
    """``requests`` sends shared by ``clients`` concurrent loops."""
    latencies: list[float] = []
    errors = 0
    remaining = requests

    async def client() -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                ok = await send()
            except aiohttp.ClientError:
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    started, cpu_before = time.perf_counter(), cpu_seconds(server_pid)
    await asyncio.gather(*(client() for _ in range(clients)))
    wall, cpu_after = time.perf_counter() - started, cpu_seconds(server_pid)
    quantiles = np.percentile(latencies, [50, 95, 99]) * 1000
    cpu = None if cpu_before is None else 1000 * (cpu_after - cpu_before) / requests
    return {"rate": requests / wall, "p": quantiles, "errors": errors, "cpu": cpu}


def in_process_ms(graph, feed: dict, repeats: int) -> float:
    for _ in range(10):
        graph.run(feed)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        graph.run(feed)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


@dataclass
class Server:
    """A ``python -m serving.server`` process of this benchmark and where it listens."""

    batching: str  # "on" or "off"
    process: subprocess.Popen
    url: str
    target: str  # gRPC host:port


def start_server(run_dir: Path, workers: int, batching: str) -> Server:
    command = [sys.executable, "-m", "serving.server", "--run", str(run_dir), "--quiet"]
    command += ["--port", "0", "--grpc-port", "0", "--workers", str(workers)]
    command += ["--no-batching"] if batching == "off" else []
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in server.stdout:
        if line.startswith("listening on"):
            words = line.split()
            return Server(batching, server, words[2], words[words.index("grpc") + 1])
    raise UserError(f"the server did not start: {server.communicate()[1].strip()}")


def stop(server: Server) -> None:
    server.process.terminate()
    server.process.communicate(timeout=60)


def in_process_row(graph, args: argparse.Namespace) -> tuple[str, float]:
    """The table's row for ``graph`` called in-process, and its median call in ms."""
    feed = example_inputs(graph.inputs, args.batch, args.steps)
    local = in_process_ms(graph, feed, 200)
    row = (
        f"| {graph.name} | {input_shape(feed)} | in-process onnxruntime | | 1 | "
        f"{1000 / local:.0f} | {local:.3f} | | | | {local:.3f} | 1.0x |"
    )
    return row, local


def input_shape(feed: dict) -> str:
    return " x ".join(map(str, next(iter(feed.values())).shape))


async def benchmark(args: argparse.Namespace, graphs: dict, servers: list[Server]) -> list[str]:
    """The rows of each graph (``graphs``: its in-process ms by graph), protocol and
    concurrency, one per server, measured back to back so that a shared machine's drifting
    load weighs on the servers alike."""
    rows = []
    connector = aiohttp.TCPConnector(limit=0)
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
        channels = [
            await stack.enter_async_context(grpc.aio.insecure_channel(server.target))
            for server in servers
        ]
        with Progress("measured", 0) as progress:  # on a terminal: which load runs now
            for graph, local in graphs.items():
                feed = example_inputs(graph.inputs, args.batch, args.steps)
                sends = [
                    senders(session, channel, server.url, graph.name, feed)
                    for server, channel in zip(servers, channels, strict=True)
                ]
                for protocol in PROTOCOLS:
                    rows += await measured_rows(
                        progress,
                        args,
                        [
                            (server, send[protocol])
                            for server, send in zip(servers, sends, strict=True)
                        ],
                        (graph.name, input_shape(feed), protocol),
                        local,
                    )
    return rows


async def measured_rows(
    progress: Progress,
    args: argparse.Namespace,
    sends: list[tuple[Server, Callable[[], Awaitable[bool]]]],
    label: tuple[str, str, str],
    local: float,
    warmup: int = 50,
) -> list[str]:
    """The rows of one model, input and protocol (``label``): each server's sender warmed up
    with ``warmup`` requests, then loaded at each concurrency, the servers back to back so
    that a shared machine's drifting load weighs on them alike (``local``: the in-process p50
    in ms)."""
    name, shape, protocol = label
    for server, send in sends:
        await load(send, 4, warmup, server.process.pid)
    rows = []
    for clients in args.concurrency:
        for server, send in sends:
            progress.advance(
                0, f"{name}, {protocol}, {clients} client(s), batching {server.batching}"
            )
            result = await load(send, clients, args.requests, server.process.pid)
            progress.advance()
            rows.append(table_row(name, shape, protocol, server.batching, clients, result, local))
    return rows


TRANSLATE = "translate"  # the task model, and the SavedModel graph it stands for
TRANSLATION_PROTOCOLS = ("TF Serving REST", "v2 HTTP (JSON)", "v2 gRPC")


def translation_senders(
    session: aiohttp.ClientSession, channel: grpc.aio.Channel, url: str, sentences: list[str]
) -> dict[str, Callable[[], Awaitable[bool]]]:
    """One request of each protocol to the task model ``translate``, each the next of
    ``sentences`` in turn; each returns whether the answer was a success."""
    turn = iter(range(1 << 62))
    infer = channel.unary_unary(
        "/inference.GRPCInferenceService/ModelInfer",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=service_pb2.ModelInferResponse.FromString,
    )

    def sentence() -> str:
        return sentences[next(turn) % len(sentences)]

    async def rest() -> bool:
        body = {"instances": [sentence()]}
        async with session.post(f"{url}/v1/models/{TRANSLATE}:predict", json=body) as response:
            await response.read()
            return response.status == 200

    async def v2_http() -> bool:
        body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES"}]}
        body["inputs"][0]["data"] = [sentence()]
        async with session.post(f"{url}/v2/models/{TRANSLATE}/infer", json=body) as response:
            await response.read()
            return response.status == 200

    async def v2_grpc() -> bool:
        message = service_pb2.ModelInferRequest(model_name=TRANSLATE)
        tensor = message.inputs.add(name="text", datatype="BYTES", shape=[1])
        tensor.contents.bytes_contents.append(sentence().encode())
        try:
            await infer(message)
        except grpc.aio.AioRpcError:
            return False
        return True

    return dict(zip(TRANSLATION_PROTOCOLS, (rest, v2_http, v2_grpc), strict=True))


def saved_translate(run_dir: Path) -> Callable[[list[str]], list[str]]:
    """The SavedModel ``translate`` signature, loaded in this process with TensorFlow
    (started quietly: its start-up lines are not the benchmark's)."""
    from keras_rnn import quiet

    tf = quiet.start_tensorflow()
    import tensorflow_text  # noqa: F401  (registers the signature's ops)

    folder = run_dir / "export" / "savedmodel" / TRANSLATE / "1"
    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]

    def translate(texts: list[str]) -> list[str]:
        found = signature(text=tf.constant(texts))["translation"].numpy()
        return [text.decode() for text in found]

    return translate


def test_sentences(run_dir: Path) -> list[str]:
    """The sources of the run's test split (sentences of many lengths)."""
    from keras_rnn.runs import finished_run
    from keras_rnn.tasks.translate.data import read_splits

    _, config = finished_run(run_dir)
    return [source for source, _ in read_splits(config)[0]["test"]]


def saved_rows(translate: Callable, sentences: list[str], args: argparse.Namespace) -> list[dict]:
    """The SavedModel signature called by 1, 4, ... threads of this process, one sentence
    per call, in turn: each concurrency's requests/s and latencies."""
    from concurrent.futures import ThreadPoolExecutor

    for sentence in sentences[:20]:  # warm up
        translate([sentence])
    results = []
    for clients in args.concurrency:

        def call(index: int) -> float:
            started = time.perf_counter()
            translate([sentences[index % len(sentences)]])
            return time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            latencies = list(pool.map(call, range(args.requests)))
        wall = time.perf_counter() - started
        p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) * 1000
        results.append({"clients": clients, "rate": args.requests / wall, "p": (p50, p95, p99)})
    return results


async def served_translations(url: str, sentences: list[str]) -> list[str]:
    """Each sentence's translation by a server's ``translate``, one request each."""
    async with aiohttp.ClientSession() as session:
        found = []
        for sentence in sentences:
            body = {"instances": [sentence]}
            async with session.post(f"{url}/v1/models/{TRANSLATE}:predict", json=body) as reply:
                found += (await reply.json())["predictions"]
        return found


async def translation_benchmark(
    args: argparse.Namespace, servers: list[Server], sentences: list[str], local: float
) -> list[str]:
    """The rows of the task model ``translate`` for each protocol, concurrency and server,
    measured back to back (``local``: the SavedModel's p50 at one client, in ms)."""
    rows = []
    async with contextlib.AsyncExitStack() as stack:
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        )
        channels = [
            await stack.enter_async_context(grpc.aio.insecure_channel(server.target))
            for server in servers
        ]
        sends = [
            translation_senders(session, channel, server.url, sentences)
            for server, channel in zip(servers, channels, strict=True)
        ]
        with Progress("measured", 0) as progress:
            for protocol in TRANSLATION_PROTOCOLS:
                rows += await measured_rows(
                    progress,
                    args,
                    [(server, send[protocol]) for server, send in zip(servers, sends, strict=True)],
                    (TRANSLATE, "1 text", protocol),
                    local,
                )
    return rows


def table_row(
    name: str, shape: str, protocol: str, batching: str, clients: int, result: dict, local: float
) -> str:
    """One row of the table: ``result`` is ``load``'s (errors and server CPU may be absent);
    ``local`` is the in-process p50 in ms that the row's p50 is compared with."""
    p50, p95, p99 = result["p"]
    cpu = "" if result.get("cpu") is None else f"{result['cpu']:.3f}"
    errors = result.get("errors", 0)
    return (
        f"| {name} | {shape} | {protocol} | {batching} | {clients} | {result['rate']:.0f} | "
        f"{p50:.3f} | {p95:.3f} | {p99:.3f} | {errors} | {cpu} | {p50 / local:.1f}x |"
    )


def translation_table(args: argparse.Namespace, servers: list[Server]) -> tuple[list[str], str]:
    """The SavedModel signature's rows and the task model's, and a line saying whether the
    servers and the signature translate the test split alike."""
    translate = saved_translate(args.run_dir)  # first: it starts TensorFlow quietly
    sentences = test_sentences(args.run_dir)
    saved = saved_rows(translate, sentences, args)
    local = saved[0]["p"][0]
    rows = [
        table_row(
            TRANSLATE, "1 text", "in-process SavedModel signature", "", row["clients"], row, local
        )
        for row in saved
    ]
    rows += asyncio.run(translation_benchmark(args, servers, sentences, local))
    answers = {"SavedModel": translate(sentences)}
    for server in servers:
        answers[f"batching {server.batching}"] = asyncio.run(
            served_translations(server.url, sentences)
        )
    reference = answers["SavedModel"]
    differing = {
        name: sum(a != b for a, b in zip(found, reference, strict=True))
        for name, found in answers.items()
    }
    same = all(count == 0 for count in differing.values())
    verdict = (
        f"translations of the {len(sentences)} test sentences: "
        + ("identical" if same else "DIFFERENT")
        + " ("
        + ", ".join(
            f"{name}: {count} differ" for name, count in differing.items() if name != "SavedModel"
        )
        + " from the SavedModel signature's)"
    )
    return rows, verdict


CHARLM = "charlm"  # the task model that generates
GENERATION_ROUTE = "generate (HTTP)"
GENERATION_PREFIXES = ("def ", "import ", "class A:", "x = 1\n", "the ", "for i in ")


def generation_request(index: int, length: int) -> tuple[str, Sampling]:
    """Request ``index`` of the generation rows: a prefix in turn, temperature 1, its own seed."""
    prefix = GENERATION_PREFIXES[index % len(GENERATION_PREFIXES)]
    return prefix, Sampling(length=length, temperature=1.0, seed=index)


async def served_text(session: aiohttp.ClientSession, url: str, prefix: str, sampling: Sampling):
    """A server's ``generate`` answer: its text, or None for an error."""
    parameters = {"length": sampling.length, "temperature": sampling.temperature}
    body = {"text_input": prefix, "parameters": {**parameters, "seed": sampling.seed}}
    async with session.post(f"{url}/v2/models/{CHARLM}/generate", json=body) as response:
        answer = await response.json()
        return answer["text_output"] if response.status == 200 else None


async def generation_benchmark(
    args: argparse.Namespace, servers: list[Server], local: float
) -> list[str]:
    """The rows of the task model ``charlm``'s generate route for each concurrency and server,
    measured back to back (``local``: a generation's median in-process, in ms)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        sends = [
            (server, generation_sender(session, server.url, args.length)) for server in servers
        ]
        with Progress("measured", 0) as progress:
            label = (CHARLM, f"{args.length} characters", GENERATION_ROUTE)
            return await measured_rows(progress, args, sends, label, local, warmup=20)


def generation_sender(
    session: aiohttp.ClientSession, url: str, length: int
) -> Callable[[], Awaitable[bool]]:
    """One ``generate`` request to a server, the next of ``generation_request`` in turn; it
    returns whether the answer was a success."""
    turn = iter(range(1 << 62))

    async def generate() -> bool:
        return await served_text(session, url, *generation_request(next(turn), length)) is not None

    return generate


async def served_texts(url: str, requests: list[tuple[str, Sampling]], clients: int) -> list:
    """A server's text for each request, sent by ``clients`` concurrent clients (so that
    they batch where the server batches)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        limit = asyncio.Semaphore(clients)

        async def one(prefix: str, sampling: Sampling):
            async with limit:
                return await served_text(session, url, prefix, sampling)

        return await asyncio.gather(*(one(*request) for request in requests))


def generation_table(args: argparse.Namespace, servers: list[Server]) -> tuple[list[str], str]:
    """The in-process row (``serving.predict``'s generation) and the generate route's rows,
    and a line saying whether every server generated ``serving.predict``'s texts."""
    graph = load_graph(args.run_dir / "export", "lm_step", threads=1)
    vocab = Vocabulary.load(graph.export_dir / graph.runtime["vocab"])
    requests = [generation_request(index, args.length) for index in range(64)]
    reference = [onnx_generate(graph, vocab, *request)[0] for request in requests]
    times = []
    for request in requests:
        started = time.perf_counter()
        onnx_generate(graph, vocab, *request)
        times.append(time.perf_counter() - started)
    local = 1000 * statistics.median(times)
    rows = [
        f"| {CHARLM} | {args.length} characters | in-process onnxruntime (serving.predict) | "
        f"| 1 | {1000 / local:.0f} | {local:.3f} | | | | {local:.3f} | 1.0x |"
    ]
    rows += asyncio.run(generation_benchmark(args, servers, local))
    differing = {
        server.batching: sum(
            found != expected
            for found, expected in zip(
                asyncio.run(served_texts(server.url, requests, max(args.concurrency))),
                reference,
                strict=True,
            )
        )
        for server in servers
    }
    same = not any(differing.values())
    verdict = (
        f"texts of {len(requests)} generations sent by {max(args.concurrency)} concurrent "
        "clients: "
        + ("identical" if same else "DIFFERENT")
        + " ("
        + ", ".join(f"batching {batching}: {count} differ" for batching, count in differing.items())
        + " from serving.predict's)"
    )
    return rows, verdict


def generates(run_dir: Path) -> bool:
    """Whether the run's export is a charlm run's (its ``lm_step`` graph in ONNX)."""
    manifest = json.loads((run_dir / "export" / "manifest.json").read_text())
    return any(
        graph["name"] == "lm_step" and "onnx" in graph and graph["runtime"].get("task") == CHARLM
        for graph in manifest["graphs"]
    )


def translates(run_dir: Path) -> bool:
    """Whether the run's export holds the SavedModel ``translate`` graph (a translate run)."""
    manifest = json.loads((run_dir / "export" / "manifest.json").read_text())
    return any(graph["name"] == TRANSLATE for graph in manifest["graphs"])


def onnx_graphs(run_dir: Path) -> list[str]:
    """The names of the ONNX graphs the run's export lists."""
    path = run_dir / "export" / "manifest.json"
    if not path.is_file():
        raise UserError(f"{path} is missing: export the run first (python -m export RUN_DIR)")
    return [graph["name"] for graph in json.loads(path.read_text())["graphs"] if "onnx" in graph]


def concurrency_list(text: str) -> list[int]:
    return [cli.positive_int(part) for part in text.split(",")]


def batching_list(text: str) -> list[str]:
    modes = text.split(",")
    if not set(modes) <= set(BATCHING):
        raise cli.argparse.ArgumentTypeError(f"must be off, on or off,on, got {text!r}")
    return modes


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m benchmarks.serving", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run_dir", type=Path, help="an exported run directory")
    parser.add_argument(
        "--graph", action="append", help="graph to load (default: every ONNX graph)"
    )
    parser.add_argument(
        "--no-graphs",
        action="store_true",
        help="no graph rows: only the task model's (translate and charlm runs)",
    )
    parser.add_argument(
        "--requests", type=cli.positive_int, default=2000, help="requests per row (default 2000)"
    )
    parser.add_argument(
        "--concurrency",
        type=concurrency_list,
        default=[1, 4, 16, 64],
        help="concurrent clients, comma-separated (default 1,4,16,64)",
    )
    parser.add_argument(
        "--batching",
        type=batching_list,
        default=list(BATCHING),
        help="the server's dynamic batching, comma-separated (default off,on: a server each)",
    )
    parser.add_argument(
        "--batch", type=cli.positive_int, default=1, help="rows per request (default 1)"
    )
    parser.add_argument(
        "--steps", type=cli.positive_int, default=24, help="steps of a sequence input (default 24)"
    )
    parser.add_argument(
        "--workers", type=cli.positive_int, default=2, help="the server's --workers (default 2)"
    )
    parser.add_argument(
        "--length",
        type=cli.positive_int,
        default=100,
        help="characters per generate request (charlm runs; default 100)",
    )
    try:
        args = parser.parse_args(argv)
        names = args.graph or onnx_graphs(args.run_dir)
        graphs = (
            []
            if args.no_graphs
            else [load_graph(args.run_dir / "export", name, threads=1) for name in names]
        )
        translation = translates(args.run_dir)
        generation = generates(args.run_dir)
    except UserError as error:
        return cli.report(error)
    rows, local = [], {}
    for graph in graphs:
        row, local[graph] = in_process_row(graph, args)
        rows.append(row)
    with contextlib.ExitStack() as stack:
        stack.enter_context(cli.exit_on_interrupt(lambda: "no table was printed"))
        servers = []
        try:
            for batching in args.batching:
                server = start_server(args.run_dir, args.workers, batching)
                stack.callback(stop, server)
                stack.enter_context(cli.on_interrupt(server.process.kill))
                servers.append(server)
        except UserError as error:
            return cli.report(error)
        rows += asyncio.run(benchmark(args, local, servers))
        verdicts = []
        for applies, table in ((translation, translation_table), (generation, generation_table)):
            if applies:
                task_rows, verdict = table(args, servers)
                rows += task_rows
                verdicts.append(verdict)
    print(
        f"server: --workers {args.workers}, onnxruntime 1 intra-op thread, batching with its "
        f"default settings; {args.requests} requests per row; server CPU: its user+system time "
        "per request"
    )
    print(HEADER)
    print("\n".join(rows))
    for verdict in verdicts:
        print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
