"""Fuse Keras 3 recurrent layers into ONNX ``LSTM``, ``GRU`` and ``RNN`` nodes in tf2onnx.

On its own tf2onnx fuses only an unmasked Keras LSTM. Every other Keras 3 layer reaches it as a
functional ``While`` whose body its patterns (written for tf.keras 2) do not recognise, so it
becomes an ONNX ``Loop``. ``FusionRewriter`` goes into ``tf2onnx.convert.from_keras`` as a
``custom_rewriter``. tf2onnx calls it on every loop body first: it records the cells it
recognises there. Then it is called on the graph that holds the loops, where it swaps each
recognised ``While`` for one fused node. Whatever it does not recognise exactly stays a
``Loop``, which is correct, only slower, and ``report`` says why.

The patterns are the graphs Keras 3.15's TensorFlow backend emits (``use_cudnn=False``), with
operands in Keras's order: a Keras release that reorders them loses fusion, not correctness.
Semantics kept:

- Weights: Keras LSTM gates i, f, c, o become ONNX i, o, f, c. Keras GRU (``reset_after=True``)
  gates z, r, h keep their order, with ``linear_before_reset=1`` and both bias rows.
- A mask becomes ``sequence_lens`` (the number of valid steps). That is exact for right
  padding, the padding this project produces. A batch with any other mask (left padding, gaps)
  has each row's valid steps moved to the front first and its outputs moved back after, so
  every mask gets Keras's answer (``export/masking.py``).
- Forward with a mask: at padded steps Keras repeats the last valid output (zeros before the
  first) where ONNX writes zeros; the outputs are rebuilt with Keras's values.
- A row with no valid step keeps its initial state in Keras, while onnxruntime returns zeros.
  Returned states are therefore ``Where(length > 0, Y_h, initial)``.
- ``go_backwards`` with a mask: ONNX ``direction="reverse"`` over the unreversed input. Keras
  returns the steps in processing order, a time flip of ONNX's ``Y`` (zeros at padding on
  both sides).
- ``go_backwards`` without a mask: a forward node over Keras's own reversed input.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from tf2onnx.graph import Graph, Node
from tf2onnx.graph_builder import GraphBuilder

from export import masking

CELLS = ("simple", "lstm", "gru")
ONNX_OP = {"simple": "RNN", "lstm": "LSTM", "gru": "GRU"}
# TensorFlow op -> ONNX recurrent activation name; anything else is left as a Loop.
ACTIVATIONS = {"Sigmoid": "Sigmoid", "Tanh": "Tanh", "Relu": "Relu"}
ANY = "*"  # a pattern leaf that matches any tensor and binds nothing


class NotFused(Exception):
    """Why one loop stays a Loop."""


# A small tree matcher over tf2onnx's graph: tf2onnx's GraphMatcher reports neither which
# output of a node was used (GRU and LSTM slice one Split three or four ways) nor whether two
# uses of a value are the same tensor, and both decide whether a loop is an RNN cell.
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


def _activation(inputs, bind: str) -> Op:
    return Op("|".join(ACTIVATIONS), (inputs,), bind=bind)


_X_T = Op("TensorListGetItem", ("x_list", "time", ANY))
_X_MATMUL = Op("MatMul", (_X_T, "kernel"))
_H_MATMUL = Op("MatMul", ("h", "recurrent_kernel"))
_LAST_AXIS = Const((-1, 1))

# SimpleRNNCell: h = activation(x @ kernel + bias + h @ recurrent_kernel)
SIMPLE = _activation(Op("AddV2", (Op("BiasAdd", (_X_MATMUL, "bias")), _H_MATMUL)), "act_h")

# LSTMCell: i, f, g, o = split(x @ kernel + h @ recurrent_kernel + bias);
# c = f * c + i * g; h = o * activation(c)
_LSTM_GATES = Op(
    "Split", (_LAST_AXIS, Op("BiasAdd", (Op("AddV2", (_X_MATMUL, _H_MATMUL)), "bias")))
)
_I, _F, _G, _O = (
    _activation(_LSTM_GATES.at(port), name)
    for port, name in enumerate(("rec_i", "rec_f", "act_g", "rec_o"))
)
_C_NEW = Op("AddV2", (Op("Mul", (_F, "c")), Op("Mul", (_I, _G))), bind="c_new")
LSTM = Op("Mul", (_O, _activation(_C_NEW, "act_c")))

# GRUCell (reset_after=True): x_z, x_r, x_h = split(x @ kernel + bias[0]);
# h_z, h_r, h_h = slices of (h @ recurrent_kernel + bias[1]);
# z = rec(x_z + h_z); r = rec(x_r + h_r); hh = act(x_h + r * h_h); h = z * h + (1 - z) * hh
_GRU_BIAS = Op("Split", (Const((0,)), "bias"))
_GRU_X = Op("Split", (_LAST_AXIS, Op("BiasAdd", (_X_MATMUL, Op("Squeeze", (_GRU_BIAS.at(0),))))))
_GRU_H = Op("AddV2", (_H_MATMUL, Op("Squeeze", (_GRU_BIAS.at(1),))))


def _gru_slice(bind: str) -> Op:
    return Op("StridedSlice", (_GRU_H, ANY, ANY, ANY), bind=bind)


_Z = _activation(Op("AddV2", (_GRU_X.at(0), _gru_slice("h_z"))), "rec_z")
_R = _activation(Op("AddV2", (_GRU_X.at(1), _gru_slice("h_r"))), "rec_r")
_HH = _activation(Op("AddV2", (_GRU_X.at(2), Op("Mul", (_R, _gru_slice("h_h"))))), "act_hh")
GRU = Op("AddV2", (Op("Mul", (_Z, "h")), Op("Mul", (Op("Sub", (Const((1.0,)), _Z)), _HH))))

PATTERNS = {"simple": SIMPLE, "lstm": LSTM, "gru": GRU}
STATES = {"simple": ("h",), "lstm": ("h", "c"), "gru": ("h",)}
GATES = {"simple": 1, "lstm": 4, "gru": 3}
# Bound activation nodes in ONNX's ``activations`` order (f, g[, h]), and the groups that one
# ONNX activation covers, which therefore must be the same op.
ACTIVATION_ORDER = {
    "simple": ("act_h",),
    "lstm": ("rec_i", "act_g", "act_c"),
    "gru": ("rec_z", "act_hh"),
}
ACTIVATION_GROUPS = {
    "simple": (),
    "lstm": (("rec_i", "rec_f", "rec_o"), ("act_g", "act_c")),
    "gru": (("rec_z", "rec_r"),),
}


@dataclass
class LoopCell:
    """A recognised loop body: the cell, its activations, and which loop variable is what."""

    cell: str
    activations: list[str]
    # Body input positions of x_list, time, output_list, h, [c], kernel, recurrent_kernel,
    # bias; with a mask also mask_list, previous_output and, when padded steps output zeros,
    # fill (Keras's zero_output_for_mask, which Bidirectional sets).
    variables: dict[str, int]
    last_only: bool  # return_sequences=False: every step overwrites item 0 of a 1-item list
    columns: list[tuple[int, int | None]]  # GRU: the recurrent projection's gate slices

    @property
    def masked(self) -> bool:
        return "mask_list" in self.variables

    @property
    def zero_fill(self) -> bool:
        return "fill" in self.variables


def recognise_body(g: Graph, cells: tuple[str, ...]) -> LoopCell:
    """The Keras recurrent cell that the While body ``g`` runs, or ``NotFused`` saying why."""
    writes = [node for node in g.get_nodes() if node.type == "TensorListSetItem"]
    if len(writes) != 1:
        raise NotFused(f"{len(writes)} output lists, expected 1")
    output_list, position, written = writes[0].input
    bound = {"output_list": output_list, "written": written}
    last_only = match(g, position, Const((0,)), bound)
    if not last_only:
        bound["time"] = position
    masked = match(g, written, Op("SelectV2", ("mask_t", "h_new", "fill")), bound)
    names = ["x_list", "time", "output_list", "kernel", "recurrent_kernel", "bias"]
    if masked:
        if not match(
            g, bound["mask_t"], Op("TensorListGetItem", ("mask_list", "time", ANY)), bound
        ):
            raise NotFused("the mask is not read step by step")
        previous = [t for t in g.input_names if match(g, _next(g, t), "written", bound)]
        if len(previous) != 1:
            raise NotFused("no single loop variable carries the previous output")
        bound["previous_output"] = previous[0]
        names += ["mask_list", "previous_output"]
        if bound["fill"] != previous[0]:
            if last_only:
                raise NotFused("zero_output_for_mask without return_sequences")
            names.append("fill")
    else:
        bound["h_new"] = written
    cell = next((c for c in cells if match(g, bound["h_new"], PATTERNS[c], bound)), None)
    if cell is None:
        raise NotFused(f"the body is not a Keras cell of {', '.join(cells)} as we fuse them")
    names += STATES[cell]
    for name in STATES[cell]:  # each state's next value: the cell's, kept at masked steps
        new = f"{name}_new"
        expected = Op("SelectV2", ("mask_t", new, name)) if masked else new
        if not match(g, _next(g, bound[name]), expected, bound):
            raise NotFused(f"state {name} is not carried as Keras carries it")
    if not match(g, _next(g, bound["time"]), Op("AddV2", ("time", Const((1,)))), bound):
        raise NotFused("time does not advance by one step")
    carried = {
        bound[name]
        for name in ("output_list", "time", "previous_output", *STATES[cell])
        if name in bound
    }
    for tensor in g.input_names:  # everything else is constant, or Keras's loop counter
        same = {"carried": tensor}
        if tensor not in carried and not (
            match(g, _next(g, tensor), "carried", same)
            or match(g, _next(g, tensor), Op("AddV2", ("carried", Const((1,)))), same)
        ):
            raise NotFused(f"the loop carries {tensor}, which no cell pattern explains")
    columns = [_columns(g, bound[name]) for name in ("h_z", "h_r", "h_h")] if cell == "gru" else []
    activations = [
        ACTIVATIONS[g.get_node_by_output(bound[name]).type] for name in ACTIVATION_ORDER[cell]
    ]
    for group in ACTIVATION_GROUPS[cell]:
        if len({g.get_node_by_output(bound[name]).type for name in group}) != 1:
            raise NotFused(f"gates {', '.join(group)} use different activations")
    if not all(g.get_node_by_output(bound[name]).is_graph_input() for name in names):
        raise NotFused("a cell input is computed inside the loop")
    variables = {name: g.input_names.index(bound[name]) for name in names}
    return LoopCell(cell, activations, variables, last_only, columns)


def _next(g: Graph, tensor: str) -> str:
    """The body output that becomes loop variable ``tensor`` in the next step."""
    return g.outputs[g.input_names.index(tensor)]


def _columns(g: Graph, tensor: str) -> tuple[int, int | None]:
    """The columns [start, stop) a GRU gate slice takes from all rows (stop None: to the end)."""
    node = g.get_node_by_output(tensor)
    if not all(g.is_const(inner) for inner in node.input[1:]):
        raise NotFused("GRU gate slices are not constant")
    begin, end, strides = (g.get_tensor_value(inner) for inner in node.input[1:])
    begin_mask, end_mask = (node.get_attr_value(key, 0) for key in ("begin_mask", "end_mask"))
    special = ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
    if strides != [1, 1] or any(node.get_attr_value(key, 0) for key in special):
        raise NotFused("GRU gate slices are not plain column ranges")
    if not (begin_mask & 1 and end_mask & 1):
        raise NotFused("GRU gate slices do not take every row")
    return (0 if begin_mask & 2 else begin[1], None if end_mask & 2 else end[1])


@dataclass
class FusionRewriter:
    """A tf2onnx ``custom_rewriter`` fusing the layers it recognises of the cells in ``fuse``,
    which maps each cell to the largest layer (units) to fuse, None for any size. ``report``
    has one line per While it saw: what it became, or why it stayed a Loop."""

    fuse: dict[str, int | None]
    report: list[str] = field(default_factory=list)
    _bodies: dict[str, LoopCell | NotFused] = field(default_factory=dict)

    def __call__(self, g: Graph, ops: list[Node]) -> list[Node]:
        try:
            self._bodies[g.graph_name] = recognise_body(g, tuple(self.fuse))
        except NotFused as reason:
            self._bodies[g.graph_name] = reason
        for node in ops:
            if node.is_while():
                try:
                    outcome = self._fuse_loop(g, node)
                except NotFused as reason:
                    outcome = f"left as Loop ({reason})"
                self.report.append(f"{node.name}: {outcome}")
        return g.get_nodes()

    def _fuse_loop(self, g: Graph, loop: Node) -> str:
        body = self._bodies.get(loop.get_attr_str("body"), NotFused("its body was not seen"))
        if isinstance(body, NotFused):
            raise body
        return _fuse(g, loop, body, self.fuse[body.cell])


def _fuse(g: Graph, loop: Node, body: LoopCell, max_units: int | None) -> str:
    """Replace ``loop`` by one fused node; returns what it became. Everything is checked
    before the graph is touched, so ``NotFused`` leaves the loop as it was."""
    index = body.variables
    weights, units = _weights(g, loop, body)
    if max_units is not None and units > max_units:
        raise NotFused(f"{units} units: above {max_units}, the Loop measured faster")
    x, mask, direction = _sequence_inputs(g, loop, body)
    used = {
        position for position, output in enumerate(loop.output) if g.find_output_consumers(output)
    }
    fused_outputs = {index[name] for name in ("output_list", *STATES[body.cell])}
    if body.masked and not body.zero_fill:
        fused_outputs.add(index["previous_output"])  # its final value is the last output
    if used - fused_outputs:
        raise NotFused(
            f"loop outputs {sorted(used - fused_outputs)} are used and have no fused counterpart"
        )
    stacks = g.find_output_consumers(loop.output[index["output_list"]])
    if any(node.type != "TensorListStack" for node in stacks):
        raise NotFused("the output list is read other than by stacking it")
    if body.last_only and not _is_one_item_list(g, loop.inputs[index["output_list"]]):
        raise NotFused("only the last output is kept, but not in a one-item list")

    builder = GraphBuilder(g)
    scope = loop.name
    lengths = ""
    if body.masked:
        x, lengths, masked_steps = masking.valid_steps_first(g, x, mask, scope)
    states = STATES[body.cell]
    initial = [  # ONNX starts from zeros when no initial state is given
        ""
        if _is_zeros(g, loop.inputs[index[name]])
        else builder.make_unsqueeze({"data": loop.input[index[name]], "axes": [0]})
        for name in states
    ]
    constants = [
        g.make_const(f"{scope}/{name}", value).output[0] for name, value in weights.items()
    ]
    fused = g.make_node(
        ONNX_OP[body.cell],
        [x, *constants, lengths, *initial],
        attr={
            "hidden_size": units,
            "direction": direction,
            "activations": body.activations,
            **({"linear_before_reset": 1} if body.cell == "gru" else {}),
        },
        output_count=1 + len(states),
        op_name_scope=scope,
    )
    finals = {
        name: builder.make_squeeze({"data": output, "axes": [0]})
        for name, output in zip(states, fused.output[1:], strict=True)
    }
    if body.last_only:
        outputs = builder.make_unsqueeze({"data": finals["h"], "axes": [0]})
    else:
        outputs = builder.make_squeeze({"data": fused.output[0], "axes": [1]})
        if body.masked:
            outputs = masking.steps_in_place(
                g, outputs, masked_steps, direction, body.zero_fill, finals["h"], scope
            )
        if direction == "reverse":  # Keras lists the steps in the order it ran them
            outputs = builder.make_slice(
                {
                    "data": outputs,
                    "starts": [-1],
                    "ends": [np.iinfo(np.int64).min],
                    "axes": [0],
                    "steps": [-1],
                }
            )
    for stack in stacks:
        g.replace_all_inputs(stack.output[0], outputs)
    if body.masked:
        g.replace_all_inputs(loop.output[index["previous_output"]], finals["h"])
        zero = g.make_const(f"{scope}/zero", np.array(0, np.int32)).output[0]
        started = masking.node(g, "Greater", [lengths, zero], scope)
        started = builder.make_unsqueeze({"data": started, "axes": [1]})
        for name in states:  # a row without valid steps keeps its initial state
            finals[name] = masking.node(
                g, "Where", [started, finals[name], loop.input[index[name]]], scope
            )
    for name in states:
        g.replace_all_inputs(loop.output[index[name]], finals[name])
    padding = ", masked" + (" (zeros at padding)" if body.zero_fill else "") if body.masked else ""
    return f"{ONNX_OP[body.cell]} ({direction}{padding}{', last output' if body.last_only else ''})"


def _weights(g: Graph, loop: Node, body: LoopCell) -> tuple[dict[str, np.ndarray], int]:
    """The loop's constant weights as ONNX's W, R and B, and the number of units."""
    inputs = [loop.input[body.variables[name]] for name in ("kernel", "recurrent_kernel", "bias")]
    if not all(g.is_const(tensor) for tensor in inputs):
        raise NotFused("weights are not constants")
    kernel, recurrent_kernel, bias = (g.get_tensor_value(t, as_list=False) for t in inputs)
    units = recurrent_kernel.shape[0]
    gates = GATES[body.cell]
    expected_bias = (2, gates * units) if body.cell == "gru" else (gates * units,)
    if (
        kernel.dtype != np.float32
        or kernel.shape[1:] != (gates * units,)
        or recurrent_kernel.shape != (units, gates * units)
        or bias.shape != expected_bias
    ):
        raise NotFused("weights are not float32 of the shapes the cell needs")
    columns = [(start, gates * units if stop is None else stop) for start, stop in body.columns]
    if body.cell == "gru" and columns != [(gate * units, (gate + 1) * units) for gate in range(3)]:
        raise NotFused(f"GRU gate slices {columns} are not the thirds of {3 * units} columns")
    return _onnx_weights(body.cell, kernel, recurrent_kernel, bias), units


def _sequence_inputs(g: Graph, loop: Node, body: LoopCell) -> tuple[str, str | None, str]:
    """The time-major input, the mask (or None) and the ONNX direction."""
    index = body.variables
    start = loop.input[index["time"]]
    if not (g.is_const(start) and g.get_tensor_value(start) == 0):
        raise NotFused("time does not start at 0")
    x_list = loop.inputs[index["x_list"]]
    if x_list.type != "TensorListFromTensor":
        raise NotFused("the input is not a whole tensor")
    if not body.masked:  # go_backwards: Keras's reversed input, run forward, as Keras does
        return x_list.input[0], None, "forward"
    mask_list = loop.inputs[index["mask_list"]]
    if mask_list.type != "TensorListFromTensor":
        raise NotFused("the mask is not a whole tensor")
    zeros = loop.inputs[index["fill" if body.zero_fill else "previous_output"]]
    if zeros.type != "ZerosLike":
        raise NotFused("padded steps do not start from zeros")
    x, mask = x_list.input[0], mask_list.input[0]
    shape = g.get_shape(mask)
    if shape is None or len(shape) != 3 or shape[2] != 1:
        raise NotFused("the mask is not shaped (time, batch, 1)")
    reversed_x, reversed_mask = _unreversed(g, x), _unreversed(g, mask)
    if (reversed_x is None) != (reversed_mask is None):
        raise NotFused("only one of input and mask is reversed")
    if reversed_x is None:
        return x, mask, "forward"
    return reversed_x, reversed_mask, "reverse"


def _is_zeros(g: Graph, node: Node) -> bool:
    """Whether ``node`` is Keras's default initial state, ``Fill(shape, 0)``."""
    return (
        node.type == "Fill" and g.is_const(node.input[1]) and g.get_tensor_value(node.input[1]) == 0
    )


def _is_one_item_list(g: Graph, node: Node) -> bool:
    return (
        node.type == "TensorListReserve"
        and g.is_const(node.input[1])
        and g.get_tensor_value(node.input[1]) == 1
    )


def _unreversed(g: Graph, tensor: str) -> str | None:
    """The input of ``tensor`` if it is ``ReverseV2`` along time (axis 0), else ``None``."""
    node = g.get_node_by_output(tensor)
    if node is None or node.type != "ReverseV2" or not g.is_const(node.input[1]):
        return None
    return node.input[0] if g.get_tensor_value(node.input[1]) == [0] else None


def _onnx_weights(
    cell: str, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray
) -> dict[str, np.ndarray]:
    """W, R and B as ONNX wants them: (1, gates*U, F), (1, gates*U, U), (1, 2*gates*U)."""
    if cell == "lstm":  # Keras i, f, c, o -> ONNX i, o, f, c
        order = [0, 3, 1, 2]
        kernel, recurrent_kernel, bias = (
            np.concatenate([np.split(w, 4, axis=-1)[gate] for gate in order], axis=-1)
            for w in (kernel, recurrent_kernel, bias)
        )
    # GRU keeps two bias rows (input, recurrent); the others have one, and ONNX adds W's and R's.
    biases = bias.reshape(-1) if cell == "gru" else np.concatenate([bias, np.zeros_like(bias)])
    values = {"W": kernel.T[None], "R": recurrent_kernel.T[None], "B": biases[None]}
    return {name: np.ascontiguousarray(value, np.float32) for name, value in values.items()}
