"""The Keras 3 cells as loop-body patterns, and ``recognise_body``, which says which one a
``While`` body runs (or ``NotFused`` saying why none)."""

from __future__ import annotations

from dataclasses import dataclass

from tf2onnx.graph import Graph

from export.fusion_match import ANY, Const, Op, match

# TensorFlow op -> ONNX recurrent activation name; anything else is left as a Loop.
ACTIVATIONS = {"Sigmoid": "Sigmoid", "Tanh": "Tanh", "Relu": "Relu"}


class NotFused(Exception):
    """Why one loop stays a Loop."""


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
