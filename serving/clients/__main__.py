"""python -m serving.clients RUN_DIR --url URL: serving.predict's prediction, by a server.

    python -m serving.clients runs/sine-lstm --window 0.1,0.35,0.6 --url http://127.0.0.1:8501
    python -m serving.clients runs/charlm --prefix "def " --protocol grpc --url 127.0.0.1:8500
    python -m serving.clients runs/translate "23 November 2026" --beam 4

The server (TF Serving, or python -m serving.server) serves each graph of the run's export as
the model of the graph's name. The run's export/ gives the graphs' inputs and outputs and the
vocabularies; the task flags and texts are serving.predict's. Translations without --beam come
from the server's `translate` model (strings in and out) where it serves one. The REST API
needs the standard library and numpy only; --protocol grpc needs TensorFlow
(serving/clients/requirements-grpc.txt). User mistakes, and a server that cannot be reached or
refuses, print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from serving import cli
from serving.clients import PROTOCOLS, connect
from serving.clients.base import DEFAULT_GRPC_URL, DEFAULT_REST_URL, DEFAULT_TIMEOUT
from serving.clients.remote import RemoteGraph
from serving.errors import UserError
from serving.predict import Tasks, run_export, task_parser
from serving.runtime.graph import manifest_entry


def seconds(text: str) -> float:
    """argparse ``type`` for a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = task_parser("python -m serving.clients", __doc__.splitlines()[0])
    parser.add_argument(
        "--url", help=f"the server (default: {DEFAULT_REST_URL}, or {DEFAULT_GRPC_URL} for grpc)"
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="rest",
        help="TF Serving's REST or gRPC API (default: rest; grpc needs TensorFlow)",
    )
    parser.add_argument(
        "--version", type=cli.positive_int, help="model version (default: the server's latest)"
    )
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds to wait for each answer (default: {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    tasks = Tasks(parser)
    try:
        args = parser.parse_args(argv)
        with cli.exit_on_interrupt(lambda: "nothing was predicted"):
            export_dir = run_export(args.run_dir)
            graph = RemoteGraph(
                export_dir, manifest_entry(export_dir, args.graph), None, args.version
            )
            runtime = tasks.check(graph, args)
            graph.client = connect(args.url, args.protocol, args.timeout)
            try:
                result, text = runtime.remote_predict(graph, args)
            finally:
                graph.client.close()
    except UserError as error:
        return cli.report(error)
    print(json.dumps(result) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
