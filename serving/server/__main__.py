"""python -m serving.server --run RUN_DIR ...: the runs' graphs and task models over HTTP, gRPC.

Serves every ONNX graph of the runs' exports, by graph name, with onnxruntime and no
TensorFlow, and each translate, tagging, sine or charlm run as one model named after its
task, which takes and gives texts (a window for sine) and answers as serving.predict does. Two
runs of one task need names: --run NAME=RUN_DIR serves the run's task model as NAME and its
graphs as NAME.GRAPH (NAME: letters, digits, - and _).

    python -m serving.server --run runs/sine-lstm --run runs/translate-gru
    python -m serving.server --run dates=runs/translate-gru --run dates2=runs/translate-lstm

HTTP (default port 8501): TF Serving's REST API under /v1/models/NAME (status, /metadata,
:predict) and the Open Inference Protocol under /v2 (health, metadata, /infer). gRPC (default
port 8001): the Open Inference Protocol's inference.GRPCInferenceService. Port 0 picks a free
port; the ready line says which. The charlm model also answers Triton's generate
extension, POST /v2/models/charlm/generate and /generate_stream (server-sent events). GET
/metrics on the HTTP port: Prometheus's metrics (Triton's names). SIGTERM or Ctrl-C stops
taking requests and lets those in flight finish, streams included. One log line per request on
stderr (--quiet: none).

Concurrent requests for one graph run as one onnxruntime call, concurrent translations
decode together, one decoder_step call per step, and concurrent generations (charlm) sample
together, one lm_step call per step (dynamic and continuous batching; every answer is what the
request gets alone): --max-batch-size and --max-queue-delay-us tune it, --no-batching turns it
off.

The step graphs (lm_step, decoder_step) also run as sequences whose states the server keeps,
as Triton's sequence batcher does: Open Inference Protocol requests with the parameters
sequence_id, sequence_start and sequence_end send only the other inputs (docs/serving.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from pathlib import Path

# grpcio's core logs its own lines to stderr (a taken port, say) before Python sees the
# error; this command reports every problem itself, in one line. Read when grpc is imported.
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
# prometheus_client writes a ``_created`` gauge beside every counter and histogram series of
# the text format, doubling the series for a timestamp Prometheus does not read from it. Read
# when prometheus_client is imported.
os.environ.setdefault("PROMETHEUS_DISABLE_CREATED_SERIES", "True")

from serving import cli
from serving.errors import UserError
from serving.server.app import Settings, serve
from serving.server.batching import BatchOptions
from serving.server.models import RUN_NAME
from serving.server.sequences import CAPACITY, IDLE_SECONDS
from serving.server.tasks import load_models


def port(text: str) -> int:
    value = cli.non_negative_int(text)
    if value > 65535:
        raise cli.argparse.ArgumentTypeError(f"must be a port number (0-65535), got {text!r}")
    return value


def run(text: str) -> Path | tuple[str, Path]:
    """argparse ``type`` of --run: a run directory, or NAME=RUN_DIR."""
    name, equals, path = text.partition("=")
    if equals and RUN_NAME.fullmatch(name):
        if not path:
            raise cli.argparse.ArgumentTypeError(f"{text!r} names no run directory after =")
        return name, Path(path)
    return Path(text)


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m serving.server",
        description=__doc__.splitlines()[0],
        epilog="GET /metrics on the HTTP port: Prometheus's metrics, with Triton's names "
        "(docs/serving.md)",
    )
    parser.add_argument(
        "--run",
        dest="runs",
        metavar="[NAME=]RUN_DIR",
        type=run,
        action="append",
        required=True,
        help="an exported run directory (repeat for several runs); NAME= serves its task "
        "model as NAME and its graphs as NAME.GRAPH; a charlm model also answers POST "
        "/v2/models/charlm/generate and /generate_stream",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    parser.add_argument(
        "--port",
        type=port,
        default=8501,
        help="HTTP port (default 8501, TF Serving's REST port; 0: any free one)",
    )
    parser.add_argument(
        "--grpc-port",
        type=port,
        default=8001,
        help="gRPC port (default 8001, Triton's; 0: any free one)",
    )
    parser.add_argument(
        "--workers",
        type=cli.positive_int,
        default=os.cpu_count() or 1,
        help="threads running requests at once (default: one per CPU core)",
    )
    parser.add_argument(
        "--threads",
        type=cli.positive_int,
        default=1,
        help="onnxruntime intra-op threads per request (default 1; --workers gives concurrency)",
    )
    parser.add_argument(
        "--max-request-mb",
        type=cli.positive_int,
        default=16,
        help="largest request body in MiB (default 16); larger ones get 413",
    )
    parser.add_argument(
        "--sequence-idle-seconds",
        type=cli.positive_float,
        default=IDLE_SECONDS,
        help=f"drop a kept sequence idle this long (default {IDLE_SECONDS:g})",
    )
    parser.add_argument(
        "--max-sequences",
        type=cli.positive_int,
        default=CAPACITY,
        help=f"open sequences at most (default {CAPACITY}); another start gets 429",
    )
    defaults = BatchOptions()
    parser.add_argument(
        "--max-batch-size",
        type=cli.positive_int,
        default=defaults.max_batch_size,
        help=f"most rows batched into one onnxruntime call (default {defaults.max_batch_size})",
    )
    parser.add_argument(
        "--max-queue-delay-us",
        type=cli.non_negative_int,
        default=defaults.max_queue_delay_us,
        help="microseconds a request may wait for others to batch with (default "
        f"{defaults.max_queue_delay_us}: none; requests that queue while every call is busy "
        "still batch)",
    )
    parser.add_argument(
        "--no-batching", action="store_true", help="run every request alone (no batching)"
    )
    parser.add_argument("--quiet", action="store_true", help="no log line per request")
    try:
        args = parser.parse_args(argv)
        with cli.exit_on_interrupt(lambda: "nothing was served"):
            registry, skipped = load_models(args.runs, args.threads)
    except UserError as error:
        return cli.report(error)
    settings = Settings(
        host=args.host,
        http_port=args.port,
        grpc_port=args.grpc_port,
        workers=args.workers,
        max_request_bytes=args.max_request_mb * 1024 * 1024,
        log_requests=not args.quiet,
        sequence_idle_seconds=args.sequence_idle_seconds,
        max_sequences=args.max_sequences,
        batching=None
        if args.no_batching
        else BatchOptions(args.max_batch_size, args.max_queue_delay_us),
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    def ready(http_port: int, grpc_port: int) -> None:
        for model in registry.tasks.values():
            print(f"serving {model.name} ({model.task} task model) from {model.run_dir}")
        for graph in registry.graphs.values():
            print(f"serving {graph.name} from {graph.run_dir}")
        for note in skipped.values():
            print(f"not serving {note}")
        print(
            f"listening on http://{args.host}:{http_port} (TF Serving REST /v1, Open Inference "
            f"Protocol /v2) and grpc {args.host}:{grpc_port} (Open Inference Protocol)",
            flush=True,
        )

    try:
        signal_name = asyncio.run(serve(registry, settings, ready))
    except OSError as error:  # the port is taken, the address is not ours
        return cli.report(UserError(f"cannot listen on {args.host}: {error.strerror or error}"))
    with contextlib.suppress(BrokenPipeError):  # whoever read stdout has gone
        print(f"stopped on {signal_name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
