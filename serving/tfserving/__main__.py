"""python -m serving.tfserving RUN_DIR [RUN_DIR ...] --out DIR: a model base folder for TF Serving.

    python -m serving.tfserving runs/sine-lstm runs/translate-gru --out tfserving-models
    python -m serving.tfserving runs/sine-lstm --out tfserving-models --force --serve

DIR holds each SavedModel graph of the runs' exports as DIR/<graph>/1/, models.config and the
batching parameters; mounted at /models in the image of serving/tfserving/Dockerfile, it is
what TF Serving serves. Prints the docker build and docker run commands and a curl request per
graph; --serve runs them. Standard library only (no TensorFlow). User mistakes print one line
to stderr and exit with status 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from serving import cli
from serving.errors import UserError
from serving.tfserving import commands, config
from serving.tfserving.folder import Graph, savedmodel_graphs, write_model_base


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m serving.tfserving", description=__doc__.split("\n")[0]
    )
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="exported runs")
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="the folder to write (mount it at /models)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace DIR if this command wrote it (nothing else)"
    )
    parser.add_argument(
        "--serve", action="store_true", help="then docker build and docker run it (Ctrl-C stops it)"
    )
    written = False
    try:
        args = parser.parse_args(argv)
        if args.serve:
            commands.check_docker()
        graphs = savedmodel_graphs(args.run_dirs)
        out = Path(os.path.abspath(args.out))  # what docker mounts; stays valid if out is "."
        with cli.exit_on_interrupt(lambda: f"{out} {'is written' if written else 'is as it was'}"):
            write_model_base(graphs, out, args.force)
            written = True
            print(report(graphs, out), flush=True)
            if args.serve:
                commands.build_image()
    except UserError as error:
        return cli.report(error)
    if args.serve:
        commands.exec_run(out)
    return 0


def report(graphs: list[Graph], out: Path) -> str:
    """What was written, and the commands that serve it."""
    width = max(len(graph.name) for graph in graphs)
    lines = [f"TF Serving model base: {out} ({config.MODELS_CONFIG}, {config.BATCHING_FILE})"]
    for graph in graphs:
        batched = (
            "batched" if config.batchable(graph.entry) else "not batched (inputs vary in length)"
        )
        lines.append(f"  {graph.name:<{width}}  from {graph.run_dir}, {batched}")
    ports = f"gRPC on port {commands.GRPC_PORT}, REST on {commands.REST_PORT}"
    lines += [
        f"build the image and run it ({ports}):",
        f"  {commands.build_command()}",
        f"  {commands.run_command(out)}",
        "ask it (REST: placeholder values of each graph's input names, dtypes and shapes, or",
        "its metadata where they are too wide for a line):",
        *(f"  {commands.curl_command(graph.entry)}" for graph in graphs),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
