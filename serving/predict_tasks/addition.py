"""``serving.predict`` on an addition run: ``--a`` and ``--b``, the sum as the course prints
it (binary adders: the bits, most significant first)."""

from __future__ import annotations

import argparse

from serving import cli
from serving.errors import UserError
from serving.runtime.addition import add, add_decimal
from serving.runtime.graph import ExportedGraph

TITLE = "addition runs"
TAKES_TEXTS = False


def add_arguments(group: cli.FlagGroup) -> None:
    """``--a`` and ``--b``; each stays None when not given."""
    group.add_argument("--a", type=int, help="first operand")
    group.add_argument("--b", type=int, help="second operand")


def predict(graph: ExportedGraph, args: argparse.Namespace) -> tuple[dict, str]:
    """The sum of ``--a`` and ``--b`` by the binary or the decimal adder."""
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


remote_predict = predict  # one call of the graph, which a RemoteGraph answers alike
