"""A gate's pre-activation as the sum of terms an ONNX recurrent node computes.

Keras 3 computes each gate's input ``x @ kernel + h @ recurrent_kernel + bias`` in several
graphs: one MatMul over all gates split afterwards (``implementation=2``), one MatMul per gate
over kernel slices (``implementation=1``, which ``recurrent_dropout`` selects), with or without
a bias, with tf2onnx's ``rewrite_gemm`` folding MatMul and Add into ``Gemm`` when shapes are
static (a fixed batch size), and with TensorFlow's optimiser reassociating the sums (it moves
``hard_sigmoid``'s ``+ 3`` into them). Rather than one pattern per graph, ``gate_terms`` reads
any tree of additions, column selections (Split, StridedSlice) and matrix products down to the
loop's inputs, and ``check_gates`` compares the resulting sums, once the weights' shapes are
known, with the ones ONNX's LSTM, GRU or RNN computes. Anything else in a sum is ``NotFused``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tf2onnx.graph import Graph, Node

from export.fusion_match import ANY, Either, Op, match

SUMS = ("Add", "AddV2", "BiasAdd")
SELECTIONS = ("StridedSlice", "Split", "Squeeze")


class NotFused(Exception):
    """Why one loop stays a Loop."""


@dataclass(frozen=True)
class Term:
    """One summand of a gate's input: ``x``, ``h`` or ``rh`` (the reset gate times the state)
    times columns of ``kernel`` or ``recurrent_kernel``; columns of ``bias`` (row ``row`` of
    GRU's two-row bias); or ``reset`` (the reset gate) times the sum ``inner``. ``columns`` are
    the selections (("split", part, parts) or ("slice", start, stop or None)) applied to the
    weight's last axis, innermost first."""

    kind: str
    columns: tuple = ()
    row: int | None = None
    inner: tuple[Term, ...] = ()


def gate_terms(
    g: Graph, tensor: str, bound: dict[str, str], reset=None
) -> tuple[list[Term], list[float]]:
    """The terms and scalar constants summed into ``tensor``. Binds x_list, time, h, kernel,
    recurrent_kernel and bias in ``bound``; ``reset`` is the pattern of GRU's reset gate."""
    terms: list[Term] = []
    constants: list[float] = []
    _collect(g, tensor, (), bound, reset, terms, constants)
    return terms, constants


def check_gates(gates: list[list[Term]], cell: str, units: int, bias_rows: int | None) -> None:
    """``NotFused`` unless each gate (Keras order) sums exactly what ONNX's node does for
    ``units`` units: its columns of x @ W and h @ R, and of the bias when there is one
    (``bias_rows``: None for none, 1 for a vector, 2 for GRU's input and recurrent rows).
    GRU's candidate takes r * (h @ R + recurrent bias) (reset_after) or (r * h) @ R."""
    width = len(gates) * units
    reset_after = any(term.kind == "reset" for term in gates[-1])
    for gate, terms in enumerate(gates):
        cols = (gate * units, (gate + 1) * units)
        x, h = ("x", cols, None, ()), ("h", cols, None, ())
        bias = {None: [], 1: [("bias", cols, None, ())], 2: [("bias", cols, 0, ())]}[bias_rows]
        recurrent_bias = [("bias", cols, 1, ())] if bias_rows == 2 else []
        if cell == "gru" and gate == 2 and reset_after:
            expected = [x, ("reset", None, None, _counted([h, *recurrent_bias])), *bias]
        elif cell == "gru" and gate == 2:
            expected = [x, ("rh", cols, None, ()), *bias]
        else:
            expected = [x, h, *bias, *recurrent_bias]
        if _counted(_resolved(term, width) for term in terms) != _counted(expected):
            raise NotFused(f"gate {gate} does not sum x @ W, h @ R and bias as ONNX does")


def _counted(items) -> tuple:
    """A multiset of terms as a comparable tuple."""
    return tuple(sorted(Counter(items).items(), key=repr))


def _resolved(term: Term, width: int) -> tuple:
    """``term`` comparable with check_gates' expectations: kind, absolute columns of a weight
    ``width`` columns wide, bias row, inner terms."""
    if term.kind == "reset":
        return ("reset", None, None, _counted(_resolved(inner, width) for inner in term.inner))
    return (term.kind, _columns(term.columns, width), term.row, ())


def _columns(selections: tuple, width: int) -> tuple[int, int]:
    start, stop = 0, width
    for kind, first, second in selections:
        if kind == "split":
            size, remainder = divmod(stop - start, second)
            if remainder:
                raise NotFused(f"a Split of {stop - start} columns in {second} parts is uneven")
            start, stop = start + first * size, start + (first + 1) * size
        else:
            end = stop if second is None else start + second
            if not start + first <= end <= stop:
                raise NotFused("a weight slice runs past its columns")
            start, stop = start + first, end
    return start, stop


def _collect(
    g: Graph,
    tensor: str,
    outer: tuple,
    bound: dict[str, str],
    reset,
    terms: list[Term],
    constants: list[float],
) -> None:
    """Adds the terms summed into ``tensor``, whose columns ``outer`` selects, to ``terms``."""
    base, chain = _strip(g, tensor)
    node = g.get_node_by_output(base)
    if node.is_graph_input():
        if not match(g, base, "bias", bound):
            raise NotFused("a gate adds a loop input other than the layer's bias")
        row, columns = _bias_selections(g, chain)
        terms.append(Term("bias", (*columns, *outer), row))
        return
    columns = (*_selections(g, chain), *outer)
    if node.type in SUMS:
        for inner in node.input:
            _collect(g, inner, columns, bound, reset, terms, constants)
    elif node.type in ("MatMul", "Gemm"):
        terms.append(_product(g, node, columns, bound, reset))
        if node.type == "Gemm":  # A @ B + C: _product checked that alpha and beta are 1
            _collect(g, node.input[2], columns, bound, reset, terms, constants)
    elif node.type == "Mul" and reset is not None and not columns:
        terms.append(_reset_product(g, node, bound, reset))
    elif node.is_const() and node.get_tensor_value(as_list=False).ndim == 0:
        constants.append(float(node.get_tensor_value()))
    else:
        raise NotFused(
            f"a gate's input has a {node.type}: neither an activation ONNX takes nor a weighted sum"
        )


def _reset_product(g: Graph, node: Node, bound: dict[str, str], reset) -> Term:
    """GRU reset_after's r * (h @ R + recurrent bias): which operand is r (the ``reset``
    pattern) is decided by the other being that sum (with a linear activation both match)."""
    for gate, other in (node.input, node.input[::-1]):
        tried = dict(bound)
        inner: list[Term] = []
        constants: list[float] = []
        try:
            if not match(g, gate, reset, tried):
                continue
            _collect(g, other, (), tried, None, inner, constants)
        except NotFused:
            continue
        if not constants:
            bound.update(tried)
            return Term("reset", inner=tuple(inner))
    raise NotFused("a gate multiplies a sum by other than the reset gate")


def _product(g: Graph, node: Node, columns: tuple, bound: dict[str, str], reset) -> Term:
    """The term of a MatMul or Gemm: its left operand and its weight's selected columns."""
    if node.type == "MatMul":
        flags = [node.get_attr_value(key, 0) for key in ("transpose_a", "transpose_b")]
    else:
        flags = [node.get_attr_value(key, 0) for key in ("transA", "transB")]
        flags += [node.get_attr_value(key, 1.0) != 1.0 for key in ("alpha", "beta")]
    if any(flags):
        raise NotFused(f"a {node.type} transposes or scales its operands")
    left, weight = node.input[:2]
    reset_state = (Op("Mul", (reset, "h")), Op("Mul", ("h", reset)))
    if match(g, left, Op("TensorListGetItem", ("x_list", "time", ANY)), bound):
        kind, name = "x", "kernel"
    elif reset is not None and match(g, left, Either(tuple(("", p) for p in reset_state)), bound):
        kind, name = "rh", "recurrent_kernel"
    elif _is_loop_input(g, left) and match(g, left, "h", bound):
        kind, name = "h", "recurrent_kernel"
    else:
        raise NotFused("a gate multiplies a weight by other than the input or the state")
    base, chain = _strip(g, weight)
    if not match(g, base, name, bound):
        raise NotFused(f"a gate's {kind} product does not use the layer's {name}")
    return Term(kind, (*_selections(g, chain), *columns))


def _is_loop_input(g: Graph, tensor: str) -> bool:
    node = g.get_node_by_output(tensor)
    while node.type == "Identity":
        node = g.get_node_by_output(node.input[0])
    return node.is_graph_input()


def _strip(g: Graph, tensor: str) -> tuple[str, list[Node]]:
    """The tensor under any Identity and selection nodes above ``tensor``, and those
    selections, innermost first."""
    chain = []
    node = g.get_node_by_output(tensor)
    while node is not None and node.type in ("Identity", *SELECTIONS):
        if node.type != "Identity":
            chain.append((node, node.output.index(tensor)))
        tensor = node.input[1 if node.type == "Split" else 0]
        node = g.get_node_by_output(tensor)
    return tensor, chain[::-1]


def _bias_selections(g: Graph, chain: list) -> tuple[int | None, tuple]:
    """A bias's row (GRU's Squeeze(Split(bias, 2, axis 0)): 0 input, 1 recurrent) and its
    column selections."""
    row = None
    if len(chain) >= 2 and chain[1][0].type == "Squeeze":
        (split, port), (squeeze, _) = chain[:2]
        if not (
            split.type == "Split"
            and _const(g, split.input[0]) == 0
            and len(split.output) == 2
            and _squeezed(squeeze) == [0]
        ):
            raise NotFused("the bias rows are not split as GRU's are")
        row, chain = port, chain[2:]
    return row, tuple(_selection(g, step, rank=1) for step in chain)


def _selections(g: Graph, chain: list) -> tuple:
    """The column selections of ``chain`` over a matrix (batch or weight rows, columns). With
    a batch size of 1 TensorFlow may squeeze a product to a vector before adding it, which
    broadcasts back: a Squeeze of axis 0 selects nothing."""
    return tuple(
        _selection(g, step, rank=2)
        for step in chain
        if not (step[0].type == "Squeeze" and _squeezed(step[0]) == [0])
    )


def _squeezed(node: Node) -> list[int]:
    """The axes a Squeeze names (TensorFlow's squeeze_dims; none: every axis of size 1, which
    for Keras's (1, columns) matrices is axis 0)."""
    return node.get_attr_value("squeeze_dims", None) or [0]


def _selection(g: Graph, step: tuple[Node, int], rank: int) -> tuple:
    """("split", part, parts) or ("slice", start, stop) of the last axis of a tensor of
    ``rank``; anything else (a Squeeze out of place, rows, strides) is ``NotFused``."""
    node, port = step
    if node.type == "Split":
        if _const(g, node.input[0]) not in (-1, rank - 1):
            raise NotFused("a gate splits a weight or product along other than its columns")
        return ("split", port, len(node.output))
    if node.type != "StridedSlice":
        raise NotFused(f"a gate reads its weights through a {node.type}")
    begin, end, strides = (_const(g, t) for t in node.input[1:])
    masks = [node.get_attr_value(key, 0) for key in ("begin_mask", "end_mask")]
    special = ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
    every_row = all(mask & ((1 << (rank - 1)) - 1) == (1 << (rank - 1)) - 1 for mask in masks)
    if (
        not isinstance(begin, list)
        or len(begin) != rank
        or strides != [1] * rank
        or any(node.get_attr_value(key, 0) for key in special)
        or not every_row
    ):
        raise NotFused("a gate slices a weight other than by a range of columns")
    last = 1 << (rank - 1)
    start = 0 if masks[0] & last else begin[-1]
    stop = None if masks[1] & last else end[-1]
    if start < 0 or (stop is not None and stop < 0):
        raise NotFused("a gate slices columns counted from the end")
    return ("slice", start, stop)


def _const(g: Graph, tensor: str):
    """The value of a constant tensor, or None."""
    return g.get_tensor_value(tensor) if g.is_const(tensor) else None
