"""Masks on fused recurrent nodes: Keras's answer for every mask, not only right padding.

A fused ONNX node knows only ``sequence_lens``, the count of leading steps to run, while Keras
skips each masked step wherever it is (the state passes through unchanged). The two agree on
right padding, the padding this project produces. For any other mask (left padding, what
``keras.utils.pad_sequences`` gives by default; gaps), each row's valid steps are moved to the
front in order, so that the fused node runs the same steps in the same order as Keras, and each
output is moved back to the step where Keras writes it.

An ``If`` on ``has_gaps`` takes those moves only for a batch that needs them. The moves cost
two gathers around the node (1.3-1.5x the layer's time); the check costs two ``If`` nodes and
six small ops, about 6 microseconds a call (``python -m benchmarks.masks``). The other design,
an ``If`` falling back to tf2onnx's Loop, would carry a second, slower copy of every layer;
moving steps keeps one fused node, exact for every mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto
from tf2onnx import utils
from tf2onnx.graph import Graph
from tf2onnx.graph_builder import GraphBuilder


def node(g: Graph, op_type: str, inputs: list[str], scope: str, **attr) -> str:
    """A new ONNX node's first output."""
    return g.make_node(op_type, inputs, attr=attr, op_name_scope=scope).output[0]


def const(g: Graph, value: np.ndarray, scope: str) -> str:
    return g.make_const(utils.make_name(f"{scope}/const"), value).output[0]


@dataclass(frozen=True)
class MaskedSteps:
    """A layer's mask as the fused node's surroundings use it."""

    valid: str  # the mask (time, batch, 1) as int64
    has_gaps: str  # bool scalar: the batch needs steps moved


def valid_steps_first(g: Graph, x: str, mask: str, scope: str) -> tuple[str, str, MaskedSteps]:
    """The input to feed the fused node (``x`` (time, batch, features) with each row's valid
    steps first when the batch needs it), its ``sequence_lens`` (int32) and the mask facts."""
    valid = node(g, "Cast", [mask], scope, to=TensorProto.INT64)
    steps = MaskedSteps(valid, has_gaps(g, valid, scope))
    moved = branch(
        g,
        steps.has_gaps,
        lambda then: _valid_first(then, x, valid, scope),
        lambda orelse: node(orelse, "Identity", [x], scope),
        like=x,
        scope=scope,
    )
    counts = GraphBuilder(g).make_reduce_sum({"data": valid, "axes": [0, 2], "keepdims": 0})
    return moved, node(g, "Cast", [counts], scope, to=TensorProto.INT32), steps


def steps_in_place(
    g: Graph,
    outputs: str,
    steps: MaskedSteps,
    direction: str,
    zero_fill: bool,
    last_output: str,
    scope: str,
) -> str:
    """The fused node's ``outputs`` (time, batch, units) with Keras's values at every step:
    moved back when the batch had gaps; at masked steps the last output so far (zeros before
    the first, ``last_output`` after the last) or, with ``zero_fill``, zeros."""

    def right_padded(orelse: Graph) -> str:
        if direction == "forward" and not zero_fill:  # repeat the last output
            return node(
                orelse, "Where", [_is_valid(orelse, steps, scope), outputs, last_output], scope
            )
        return node(orelse, "Identity", [outputs], scope)  # ONNX's zeros are Keras's

    return branch(
        g,
        steps.has_gaps,
        lambda then: _moved_back(then, outputs, steps, direction, zero_fill, scope),
        right_padded,
        like=outputs,
        scope=scope,
    )


def has_gaps(g: Graph, valid: str, scope: str) -> str:
    """A bool scalar: whether some row of ``valid`` (int64, time first) has a valid step after
    a masked one, i.e. is not a right-padded prefix."""
    builder = GraphBuilder(g)
    end = np.iinfo(np.int64).max
    later = builder.make_slice({"data": valid, "starts": [1], "ends": [end], "axes": [0]})
    earlier = builder.make_slice({"data": valid, "starts": [0], "ends": [-1], "axes": [0]})
    rises = node(g, "Greater", [later, earlier], scope)
    count = node(  # a sum, not a max: one step gives an empty tensor, which sums to 0
        g, "ReduceSum", [node(g, "Cast", [rises], scope, to=TensorProto.INT64)], scope, keepdims=0
    )
    return node(g, "Cast", [count], scope, to=TensorProto.BOOL)


def branch(
    g: Graph,
    condition: str,
    then_build: Callable[[Graph], str],
    else_build: Callable[[Graph], str],
    like: str,
    scope: str,
) -> str:
    """An ``If`` on ``condition`` whose branches are built by the two callables (each gets its
    branch graph and returns its output, of the dtype and shape of ``like``)."""
    branches = {}
    for key, build in (("then_branch", then_build), ("else_branch", else_build)):
        graph = g.create_new_graph_with_same_config()
        graph.parent_graph = g
        graph.add_graph_output(build(graph), g.get_dtype(like), g.get_shape(like))
        branches[key] = graph
    return g.make_node(
        "If",
        [condition],
        branches=branches,
        op_name_scope=scope,
        dtypes=[g.get_dtype(like)],
        shapes=[g.get_shape(like)],
    ).output[0]


def _valid_first(g: Graph, x: str, valid: str, scope: str) -> str:
    """``x`` (time, batch, features) with each row's valid steps first, in their order.
    Sorting the keys ``t`` (valid step) and ``T + t`` (masked step), all distinct, gives the
    order; TopK returns it as indices."""
    steps = node(
        g, "Gather", [node(g, "Shape", [valid], scope), const(g, np.array(0), scope)], scope
    )
    zero, one = const(g, np.array(0), scope), const(g, np.array(1), scope)
    positions = node(
        g,
        "Unsqueeze",
        [node(g, "Range", [zero, steps, one], scope), const(g, np.array([1, 2]), scope)],
        scope,
    )
    masked = node(g, "Sub", [one, valid], scope)
    keys = node(g, "Add", [node(g, "Mul", [masked, steps], scope), positions], scope)
    count = node(g, "Unsqueeze", [steps, const(g, np.array([0]), scope)], scope)
    order = g.make_node(
        "TopK",
        [keys, count],
        attr={"axis": 0, "largest": 0, "sorted": 1},
        output_count=2,
        op_name_scope=scope,
    ).output[1]
    return _gather_steps(g, x, order, scope)


def _moved_back(
    g: Graph, outputs: str, steps: MaskedSteps, direction: str, zero_fill: bool, scope: str
) -> str:
    """Outputs over valid-first steps, put back where Keras writes them. Forward, step t shows
    the output after the k valid steps up to t (index k - 1). Reverse, the node ran the valid
    steps from the last, so after the k valid steps from t on it had written index count - k.
    No valid step yet (k = 0): zeros, Keras's first "previous output"."""
    time = const(g, np.array(0), scope)
    if direction == "forward":
        done = node(g, "CumSum", [steps.valid, time], scope)
        source = node(g, "Sub", [done, const(g, np.array(1), scope)], scope)
    else:
        done = node(g, "CumSum", [steps.valid, time], scope, reverse=1)
        count = node(
            g, "ReduceSum", [steps.valid, const(g, np.array([0]), scope)], scope, keepdims=1
        )
        source = node(g, "Sub", [count, done], scope)
    started = node(g, "Greater", [done, const(g, np.array(0), scope)], scope)
    return node(
        g,
        "Where",
        [
            _is_valid(g, steps, scope) if zero_fill else started,
            _gather_steps(g, outputs, source, scope),
            const(g, np.array(0, np.float32), scope),
        ],
        scope,
    )


def _is_valid(g: Graph, steps: MaskedSteps, scope: str) -> str:
    """The mask as bool, computed inside a branch. Branches read only tensors made here: when
    onnxruntime removes a node whose output a branch reads (tf2onnx's own bool-to-bool Cast of
    the mask, in a Bidirectional layer), it cannot always rename that implicit input, and
    warns at every session start."""
    return node(g, "Cast", [steps.valid], scope, to=TensorProto.BOOL)


def _gather_steps(g: Graph, values: str, steps: str, scope: str) -> str:
    """``values[steps[t, b], b, :]`` for int64 ``steps`` (time, batch, 1); -1 is the last step."""
    expanded = node(g, "Expand", [steps, node(g, "Shape", [values], scope)], scope)
    return node(g, "GatherElements", [values, expanded], scope, axis=0)
