"""python -m serving.predict RUN_DIR: a prediction from an exported run with onnxruntime alone.

    python -m serving.predict runs/sine-lstm --window 0.1,0.35,0.6,...
    python -m serving.predict runs/sine-lstm --csv series.csv --column value
    python -m serving.predict runs/addition --a 9 --b 60
    python -m serving.predict runs/charlm --prefix "def " --length 300 --temperature 0.5
    python -m serving.predict runs/tagging --text 'x = f(1)  # call'

Imports numpy and onnxruntime only (install with serving/requirements.txt). User mistakes
print one line to stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from serving import cli
from serving.errors import UserError
from serving.runtime import ExportedGraph, add, forecast, load_graph
from serving.runtime.addition import add_decimal
from serving.runtime.charlm import (
    GENERATION_DEFAULTS,
    Vocabulary,
    add_generation_flags,
    fill_generation_defaults,
    onnx_generate,
    unknown_note,
)
from serving.runtime.series import read_csv_series
from serving.runtime.tagging import load_tags, tag


class _Parser(cli.ArgumentParser):
    def error(self, message: str):
        if message == "argument --window: expected one argument":
            message += " (a window starting with a minus sign needs --window=-0.5,0.1,...)"
        super().error(message)


def parse_window(text: str) -> np.ndarray:
    """Comma-separated numbers; each bad item is named."""
    values = []
    for position, item in enumerate(text.split(","), start=1):
        try:
            value = float(item)
        except ValueError:
            raise UserError(
                f"--window item {position} ({item.strip()!r}) is not a number"
            ) from None
        if not math.isfinite(value):
            raise UserError(f"--window item {position} is {item.strip()}: give finite values only")
        values.append(value)
    return np.asarray(values, dtype=np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m serving.predict", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory exported by python -m export")
    parser.add_argument("--graph", help="graph name (default: the only one, or lm_step for charlm)")
    parser.add_argument(
        "--threads", type=cli.positive_int, help="onnxruntime intra-op threads (at least 1)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    sine = parser.add_argument_group("sine runs (one of --window and --csv)")
    sine.add_argument("--window", help="comma-separated past values, oldest first")
    sine.add_argument("--csv", help="CSV file with a header row: forecast after its last values")
    sine.add_argument("--column", help="CSV column (default: the file's only column)")
    addition = parser.add_argument_group("addition runs")
    addition.add_argument("--a", type=int, help="first operand")
    addition.add_argument("--b", type=int, help="second operand")
    parser.add_argument_group("tagging runs").add_argument("--text", help=TEXT_HELP)
    add_generation_flags(
        parser.add_argument_group("charlm runs (the same flags and text as keras_rnn.generate)"),
        defaults=False,  # unset stays None: given to another task's run, they are refused
    )
    try:
        args = parser.parse_args(argv)
        with cli.exit_on_interrupt(lambda: "nothing was predicted"):
            graph = load_graph(args.run_dir / "export", args.graph, args.threads)
            task = graph.runtime.get("task")
            if task not in PREDICTORS:
                raise UserError(
                    f"graph {graph.name} is from task {task!r}, which predict does not serve"
                )
            result, text = PREDICTORS[task](graph, args)
    except UserError as error:
        return cli.report(error)
    print(json.dumps(result) if args.json else text)
    return 0


TASK_FLAGS = ("window", "csv", "column", "a", "b", "text", "prefix", *GENERATION_DEFAULTS)
TEXT_HELP = (
    "text to tag; text longer than the tagger's max_length (from its export) is tagged in "
    "pieces of whole lines, as the tagger was trained; a longer line is cut after a space "
    "(training cuts it at max_length)"
)


def _only_flags(args: argparse.Namespace, task: str, allowed: set[str]) -> None:
    """Refuse another task's flags, so a typo'd run directory is not silently misread."""
    given = [name for name in TASK_FLAGS if getattr(args, name) is not None]
    if stray := [name for name in given if name not in allowed]:
        flags = ", ".join("--" + name.replace("_", "-") for name in stray)
        raise UserError(f"{flags}: not an option for {task} runs")


def predict_sine(graph: ExportedGraph, args: argparse.Namespace) -> tuple[dict, str]:
    _only_flags(args, "sine", {"window", "csv", "column"})
    if (args.window is None) == (args.csv is None):
        raise UserError("a sine run needs exactly one of --window and --csv")
    if args.column and not args.csv:
        raise UserError("--column needs --csv")
    if args.csv:
        window = read_csv_series(args.csv, args.column)[-graph.runtime["window"] :]
        described = f"the last {len(window)} values of {args.csv}"
    else:
        window = parse_window(args.window)
        described = f"{len(window)} values"
    if len(window) and len(window) != graph.runtime["window"]:  # works, but off its training
        print(
            f"warning: the window has {len(window)} values; the model was trained on windows "
            f"of {graph.runtime['window']}: the forecast may be less accurate",
            file=sys.stderr,
        )
    result = forecast(graph, window)
    lines = [
        f"input: {described}, last {window[-1]:.4f}",
        f"one step ahead: {result['next_value']:.4f}",
        "",
        "| steps ahead | direct | recursive |",
        "|---:|---:|---:|",
    ]
    for step, (direct, recursive) in enumerate(
        zip(result["next_values"], result["recursive"], strict=True)
    ):
        lines.append(f"| {step + 1} | {direct:.4f} | {recursive:.4f} |")
    return result, "\n".join(lines)


def predict_addition(graph: ExportedGraph, args: argparse.Namespace) -> tuple[dict, str]:
    """The sum, shown as the course prints it: bits most significant first."""
    _only_flags(args, "addition", {"a", "b"})
    if args.a is None or args.b is None:
        raise UserError("an addition run needs --a and --b")
    if graph.runtime.get("digits"):
        result = add_decimal(graph, args.a, args.b)
        return result, f"{args.a} + {args.b} = {result['answer']}"
    result = add(graph, args.a, args.b)
    width = result["bits"]
    lines = [
        f"a:    {args.a:0{width}b}",
        f"b:    {args.b:0{width}b}",
        f"pred: {result['sum']:0{width}b}",
        f"{args.a} + {args.b} = {result['sum']}",
    ]
    return result, "\n".join(lines)


def predict_charlm(graph: ExportedGraph, args: argparse.Namespace) -> tuple[dict, str]:
    _only_flags(args, "charlm", {"prefix", *GENERATION_DEFAULTS})
    fill_generation_defaults(args)
    vocab = Vocabulary.load(args.run_dir / "export" / graph.runtime["vocab"])
    text, unknown = onnx_generate(
        graph, vocab, args.prefix or "", args.length, args.temperature, args.top_k, args.seed
    )
    if unknown:
        print(unknown_note(unknown), file=sys.stderr)
    return {"prefix": args.prefix, "generated": text, "unknown": unknown}, args.prefix + text


def predict_tagging(graph: ExportedGraph, args: argparse.Namespace) -> tuple[dict, str]:
    """Each item with its tag, a line each."""
    _only_flags(args, "tagging", {"text"})
    vocab_path = args.run_dir / "export" / graph.runtime["vocab"]
    items, tags, unknown = tag(
        graph, Vocabulary.load(vocab_path), load_tags(vocab_path), args.text or ""
    )
    if unknown:
        print(unknown_note(unknown, f"{graph.runtime['unit']}(s)"), file=sys.stderr)
    lines = [f"{item!r}\t{name}" for item, name in zip(items, tags, strict=True)]
    return {"items": items, "tags": tags, "unknown": unknown}, "\n".join(lines)


PREDICTORS = {
    "sine": predict_sine,
    "addition": predict_addition,
    "charlm": predict_charlm,
    "tagging": predict_tagging,
}


if __name__ == "__main__":
    sys.exit(main())
