"""A tree matcher over tf2onnx's graph, for the cell patterns of ``export/fusion_cells.py``.

tf2onnx's GraphMatcher reports neither which output of a node was used (GRU and LSTM slice one
Split three or four ways), nor whether two uses of a value are the same tensor, nor which of
several forms matched (which activation a gate applies), and all three decide whether a loop
is an RNN cell and which.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from tf2onnx.graph import Graph

ANY = "*"  # a pattern leaf that matches any tensor and binds nothing


@dataclass(frozen=True)
class Op:
    """Matches the node producing a tensor: its type (``|`` separates choices), which of its
    outputs the tensor is, its inputs in order (``None``: any), and a name to bind it to."""

    types: str
    inputs: tuple | None = None
    port: int = 0
    bind: str | None = None

    def at(self, port: int) -> Op:
        return replace(self, port=port)


@dataclass(frozen=True)
class Either:
    """Matches the first of ``options`` ((label, pattern) pairs) that matches. With ``bind``,
    binds ``bind`` to the tensor and ``bind + ":form"`` to the label of the option taken."""

    options: tuple
    bind: str | None = None


@dataclass(frozen=True)
class Const:
    """Matches a scalar constant equal to one of ``values``."""

    values: tuple


# A pattern is an Op, a Const or a name: a name matches any tensor, and the same tensor
# wherever the name appears.
def match(g: Graph, tensor: str, pattern, bound: dict[str, str]) -> bool:
    """Whether ``tensor`` matches ``pattern``; names are bound in ``bound`` as it goes."""
    node = g.get_node_by_output(tensor)
    while node is not None and node.type == "Identity":  # ReadVariableOp and output copies
        tensor = node.input[0]
        node = g.get_node_by_output(tensor)
    if isinstance(pattern, str):
        return pattern == ANY or bound.setdefault(pattern, tensor) == tensor
    if isinstance(pattern, Either):
        return _match_either(g, tensor, pattern, bound)
    if node is None:
        return False
    if isinstance(pattern, Const):
        return (
            node.is_const()
            and np.ndim(value := node.get_tensor_value()) == 0
            and (value in pattern.values)
        )
    if node.type not in pattern.types.split("|") or node.output.index(tensor) != pattern.port:
        return False
    if pattern.bind is not None and bound.setdefault(pattern.bind, tensor) != tensor:
        return False
    if pattern.inputs is None:
        return True
    return len(node.input) == len(pattern.inputs) and all(
        match(g, inner, part, bound) for inner, part in zip(node.input, pattern.inputs, strict=True)
    )


def _match_either(g: Graph, tensor: str, pattern: Either, bound: dict[str, str]) -> bool:
    for label, option in pattern.options:
        tried = dict(bound)  # an option that fails part-way must not leave its bindings
        if match(g, tensor, option, tried):
            if pattern.bind is not None and not (
                tried.setdefault(pattern.bind, tensor) == tensor
                and tried.setdefault(f"{pattern.bind}:form", label) == label
            ):
                return False
            bound.update(tried)
            return True
    return False
