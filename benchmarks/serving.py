"""python -m benchmarks.serving RUN_DIR: bounded load on python -m serving.server over loopback.

Starts a server on the run's export (TensorFlow is not needed) for each --batching setting
(default: dynamic batching off, and on), then for each graph, protocol and concurrency, each
server in turn: N clients (asyncio tasks of this process) send a fixed number of requests in
total, each the same batch of inputs shaped by the manifest. Prints throughput, p50/p95/p99
latency and errors beside the graph called in-process with onnxruntime (the protocol's
overhead as a ratio of the p50s). Client and servers share this machine's cores: compare
ratios within one run, not absolute numbers across machines.

    python -m benchmarks.serving runs/demo-sine-lstm --requests 2000 --concurrency 1,4,16,64
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
                    for server, send in zip(servers, sends, strict=True):  # warm up
                        await load(send[protocol], 4, 50, server.process.pid)
                    for clients in args.concurrency:
                        for server, send in zip(servers, sends, strict=True):
                            progress.advance(
                                0,
                                f"{graph.name}, {protocol}, {clients} client(s), "
                                f"batching {server.batching}",
                            )
                            result = await load(
                                send[protocol], clients, args.requests, server.process.pid
                            )
                            progress.advance()
                            p50, p95, p99 = result["p"]
                            cpu = "" if result["cpu"] is None else f"{result['cpu']:.3f}"
                            rows.append(
                                f"| {graph.name} | {input_shape(feed)} | {protocol} | "
                                f"{server.batching} | {clients} | {result['rate']:.0f} | "
                                f"{p50:.3f} | {p95:.3f} | {p99:.3f} | {result['errors']} | "
                                f"{cpu} | {p50 / local:.1f}x |"
                            )
    return rows


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
    try:
        args = parser.parse_args(argv)
        graphs = [
            load_graph(args.run_dir / "export", name, threads=1)
            for name in args.graph or onnx_graphs(args.run_dir)
        ]
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
    print(
        f"server: --workers {args.workers}, onnxruntime 1 intra-op thread, batching with its "
        f"default settings; {args.requests} requests per row; server CPU: its user+system time "
        "per request"
    )
    print(HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
