"""python -m serving.predict RUN_DIR: a prediction from an exported run with onnxruntime alone.

    python -m serving.predict runs/sine-lstm --window 0.1,0.35,0.6,...
    python -m serving.predict runs/sine-lstm --csv series.csv --column value
    python -m serving.predict runs/addition --a 9 --b 60
    python -m serving.predict runs/charlm --prefix "def " --length 300 --temperature 0.5
    python -m serving.predict runs/tagging --text 'x = f(1)  # call'
    python -m serving.predict runs/translate "23 November 2026" "2026年11月23日" --beam 4

Imports numpy and onnxruntime only (install with serving/requirements.txt). User mistakes
print one line to stderr and exit with status 2.

Dispatch: each task's ``TaskRuntime`` (``serving.predict_tasks``, the contract) adds its flags
and predicts from the graph; a new task adds its module there, nothing here. Flags stay None
unless given, so another task's flag is refused by name; the positional texts go to a task whose
runtime sets ``TAKES_TEXTS``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from serving import cli
from serving.errors import UserError
from serving.predict_tasks import TaskRuntime, task_runtimes
from serving.runtime import load_graph
from serving.runtime.graph import default_graphs, read_manifest


class _Parser(cli.ArgumentParser):
    def error(self, message: str):
        if message.startswith("argument --") and message.endswith("expected one argument"):
            flag = message.split()[1].rstrip(":")
            message += f" (a value that starts with a minus sign needs {flag}=-0.5,0.1,...)"
        super().error(message)


class _Flags:
    """An argument group that records the destination of each flag added to it."""

    def __init__(self, group: cli.FlagGroup):
        self.group, self.names = group, []

    def add_argument(self, *args, **kwargs) -> argparse.Action:
        action = self.group.add_argument(*args, **kwargs)
        self.names.append(action.dest)
        return action


def task_parser(prog: str, description: str) -> cli.ArgumentParser:
    """A parser with what every task CLI takes: RUN_DIR, the positional texts and --graph.
    The caller adds its own options, then every task's flags with ``Tasks(parser)``
    (serving.predict here, serving.clients for a server)."""
    parser = _Parser(prog=prog, description=description)
    parser.add_argument("run_dir", type=Path, help="a run directory exported by python -m export")
    parser.add_argument("texts", nargs="*", help="translate runs: the texts to translate")
    parser.add_argument("--graph", help="graph name (default: the only one, or lm_step for charlm)")
    return parser


class Tasks:
    """Every task's flags on one parser, and the runtime of a graph's task (the graph an
    ``ExportedGraph``, or anything with its attributes and call)."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.runtimes = task_runtimes()
        self.flags = {}
        for task, runtime in self.runtimes.items():
            self.flags[task] = _Flags(parser.add_argument_group(runtime.TITLE))
            runtime.add_arguments(self.flags[task])

    def check(self, graph: Any, args: argparse.Namespace) -> TaskRuntime:
        """The runtime of the task of ``graph``, once the arguments fit it."""
        task = graph.runtime.get("task")
        if task not in self.runtimes:
            raise UserError(
                f"graph {graph.name} is from task {task!r}, which predict does not serve"
            )
        refuse_other_tasks_flags(args, task, self.flags)
        runtime = self.runtimes[task]
        if args.texts and not runtime.TAKES_TEXTS:
            raise UserError(f"{task} runs take no texts as arguments: got {args.texts[0]!r}")
        return runtime


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = task_parser("python -m serving.predict", __doc__.splitlines()[0])
    parser.add_argument(
        "--threads", type=cli.positive_int, help="onnxruntime intra-op threads (at least 1)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    tasks = Tasks(parser)
    try:
        args = parser.parse_intermixed_args(argv)  # texts after flags too
        with cli.exit_on_interrupt(lambda: "nothing was predicted"):
            export_dir = run_export(args.run_dir)
            check_driven(export_dir, args.graph)
            graph = load_graph(export_dir, args.graph, args.threads)
            result, text = tasks.check(graph, args).predict(graph, args)
    except UserError as error:
        return cli.report(error)
    print(json.dumps(result) if args.json else text)
    return 0


def run_export(run_dir: Path) -> Path:
    """The export folder of the run at ``run_dir``, once that run directory exists."""
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}")
    return run_dir / "export"


def check_driven(export_dir: Path, name: str | None) -> None:
    """Refuse ``--graph NAME`` for a graph the export lists that the task's runtime does not
    drive: of several graphs, it drives those marked ``default`` (charlm's lm_step)."""
    entries = {entry["name"]: entry for entry in read_manifest(export_dir)["graphs"]}
    driven = default_graphs(entries)
    if name in entries and driven and name not in driven:
        task = entries[name].get("runtime", {}).get("task")
        raise UserError(
            f"--graph {name}: the {task} runtime drives graph {', '.join(driven)}, not {name} "
            "(leave --graph out)"
        )


def refuse_other_tasks_flags(args: argparse.Namespace, task: str, flags: dict) -> None:
    """Refuse another task's flags, so a typo'd run directory is not silently misread."""
    own = set(flags[task].names)
    stray = [
        name
        for other in flags.values()
        for name in other.names
        if name not in own and getattr(args, name) is not None
    ]
    if stray:
        shown = ", ".join("--" + name.replace("_", "-") for name in dict.fromkeys(stray))
        raise UserError(f"{shown}: not an option for {task} runs")


if __name__ == "__main__":
    sys.exit(main())
