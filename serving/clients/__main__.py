"""python -m serving.clients RUN_DIR --url URL: serving.predict's prediction, by a server.

    python -m serving.clients runs/sine-lstm --window 0.1,0.35,0.6 --url http://127.0.0.1:8501
    python -m serving.clients runs/charlm --prefix "def " --protocol grpc --url 127.0.0.1:8500
    python -m serving.clients runs/translate "23 November 2026" --beam 4
    python -m serving.clients --model translate "23 November 2026" --url http://127.0.0.1:8501

The server (TF Serving, or python -m serving.server) serves each graph of the run's export as
the model of the graph's name. The run's export/ gives the graphs' inputs and outputs and the
vocabularies; the task flags and texts are serving.predict's. Translations without --beam come
from the server's `translate` model (strings in and out) where it serves one. The REST API
needs the standard library and numpy only; --protocol grpc needs TensorFlow
(serving/clients/requirements-grpc.txt). User mistakes, and a server that cannot be reached or
refuses, print one line to stderr and exit with status 2.

With --model NAME instead of RUN_DIR, the server's task model NAME answers (python -m
serving.server serves each translate, tagging, sine or charlm run as one, named after its task
or --run NAME=RUN_DIR): the URL is all the client needs. Its task comes from the model's
metadata. TF Serving's API has no decoding options: translation is greedy and comes without
scores and unknown tokens, and generation takes --prefix with serving.predict's defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from serving import cli
from serving.clients import PROTOCOLS, connect
from serving.clients.base import DEFAULT_GRPC_URL, DEFAULT_REST_URL, DEFAULT_TIMEOUT
from serving.clients.remote import RemoteGraph
from serving.clients.tasks import predict as predict_by_model
from serving.clients.tasks import served_task
from serving.errors import UserError
from serving.predict import Tasks, refuse_other_tasks_flags, run_export, task_parser
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


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that say which server, how, and how to print."""
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


MODEL_MODE = "the server's task model NAME answers, with the URL alone (--model NAME --help)"


def by_model(argv: list[str]) -> bool:
    """Whether the command line names a task model (--model NAME) rather than a run."""
    return any(arg == "--model" or arg.startswith("--model=") for arg in argv)


def model_main(argv: list[str]) -> int:
    """python -m serving.clients --model NAME ...: the prediction by a task model."""
    parser = cli.ArgumentParser(prog="python -m serving.clients", description=MODEL_MODE)
    parser.add_argument("texts", nargs="*", help="translate models: the texts to translate")
    parser.add_argument(
        "--model",
        metavar="NAME",
        required=True,
        help="the task model (translate, tagging, sine, charlm, or the NAME of --run NAME=RUN_DIR)",
    )
    add_client_arguments(parser)
    tasks = Tasks(parser)
    try:
        args = parser.parse_intermixed_args(argv)
        if args.texts and (Path(args.texts[0]) / "export").is_dir():
            raise UserError(f"give a run directory or --model, not both: got {args.texts[0]}")
        with cli.exit_on_interrupt(lambda: "nothing was predicted"):
            client = connect(args.url, args.protocol, args.timeout)
            try:
                task = served_task(client, args.model, args.version)
                refuse_other_tasks_flags(args, task, tasks.flags)
                result, text = predict_by_model(client, args.model, task, args)
            finally:
                client.close()
    except UserError as error:
        return cli.report(error)
    print(json.dumps(result) if args.json else text)
    return 0


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if by_model(argv):
        return model_main(argv)
    parser = task_parser("python -m serving.clients", __doc__.splitlines()[0])
    parser.epilog = f"With --model NAME in place of RUN_DIR: {MODEL_MODE}"
    add_client_arguments(parser)
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
