"""The Keras 3 cells as loop-body patterns, and ``recognise_body``, which says which one a
``While`` body runs (or ``NotFused`` saying why none).

A pattern here is a cell's structure down to its activations; what each gate's activation is
applied to, its sum of weighted inputs, is read by ``export/fusion_terms.py``, whatever graph
Keras, tf2onnx and TensorFlow's optimiser made of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tf2onnx.graph import Graph

from export.fusion_match import ANY, Const, Either, Op, match
from export.fusion_terms import NotFused, Term, gate_terms

# Keras activations that are one TensorFlow op computing exactly the function ONNX's recurrent
# ops name the same (elu with Keras's alpha 1; leaky_relu with its alpha).
ELEMENTWISE = ("Sigmoid", "Tanh", "Relu", "Elu", "Softsign", "Softplus", "LeakyRelu")
_THREE, _SIX, _SIXTH = Const((3.0,)), Const((6.0,)), Const((np.float32(1 / 6),))
# ONNX's activation_alpha and activation_beta of the activations that take them; onnxruntime
# reads one value per such activation, in order (measured: others read none).
PARAMETERS = {"HardSigmoid": (1 / 6, 0.5), "Affine": (1.0, 0.0), "Elu": (1.0, None)}


def _activation(inner, bind: str, summed: bool = True) -> Either:
    """A Keras activation ONNX names, applied to ``inner``: TensorFlow's op; hard_sigmoid,
    relu6(x + 3) / 6, which is HardSigmoid(alpha 1/6, beta 0.5), as TensorFlow's optimiser
    leaves it (times 1/6, the + 3 moved into ``inner`` when ``summed``, a gate's sum, whose
    terms are checked for it); linear, no op at all (Affine alpha 1, beta 0), tried last."""
    shifted = (
        inner
        if summed
        else Either((("", Op("AddV2", (inner, _THREE))), ("", Op("AddV2", (_THREE, inner)))))
    )
    relu6 = Op("Relu6", (shifted,))
    hard = (Op("Mul", (relu6, _SIXTH)), Op("Mul", (_SIXTH, relu6)), Op("RealDiv", (relu6, _SIX)))
    return Either(
        (
            *((name, Op(name, (inner,))) for name in ELEMENTWISE),
            *(("HardSigmoid", form) for form in hard),
            ("Affine", inner),
        ),
        bind=bind,
    )


# Each gate's sum (x @ kernel + h @ recurrent_kernel + bias, as fusion_terms reads it) is bound
# to pre_<gate>, its activation to rec_<gate> (recurrent_activation) or act_<gate> (activation).
# SimpleRNNCell: h = act(pre_h)
SIMPLE = _activation("pre_h", "act_h")

# LSTMCell: i, f, g, o = rec(pre_i), rec(pre_f), act(pre_g), rec(pre_o);
# c = f * c + i * g; h = o * act(c)
_I, _F, _G, _O = (
    _activation(f"pre_{gate}", name)
    for gate, name in zip("ifgo", ("rec_i", "rec_f", "act_g", "rec_o"), strict=True)
)
_C_NEW = Op("AddV2", (Op("Mul", (_F, "c")), Op("Mul", (_I, _G))), bind="c_new")
LSTM = Op("Mul", (_O, _activation(_C_NEW, "act_c", summed=False)))

# GRUCell: z = rec(pre_z); r = rec(pre_r), found inside pre_hh; hh = act(pre_hh);
# h = z * h + (1 - z) * hh
_Z = _activation("pre_z", "rec_z")
RESET = _activation("pre_r", "rec_r")
GRU = Op(
    "AddV2",
    (
        Op("Mul", (_Z, "h")),
        Op("Mul", (Op("Sub", (Const((1.0,)), _Z)), _activation("pre_hh", "act_hh"))),
    ),
)

# Tried in this order: SIMPLE (with a linear activation) matches any tensor.
PATTERNS = {"lstm": LSTM, "gru": GRU, "simple": SIMPLE}
STATES = {"simple": ("h",), "lstm": ("h", "c"), "gru": ("h",)}
GATES = {"simple": 1, "lstm": 4, "gru": 3}
# Each gate's sum, in Keras's gate order, and its activation.
SUMS = {
    "simple": {"pre_h": "act_h"},
    "lstm": {"pre_i": "rec_i", "pre_f": "rec_f", "pre_g": "act_g", "pre_o": "rec_o"},
    "gru": {"pre_z": "rec_z", "pre_r": "rec_r", "pre_hh": "act_hh"},
}
# Bound activations in ONNX's ``activations`` order (f, g[, h]), and the groups that one
# ONNX activation covers, which therefore must be the same.
ACTIVATION_ORDER = {
    "simple": ("act_h",),
    "lstm": ("rec_i", "act_g", "act_c"),
    "gru": ("rec_z", "act_hh"),
}
ACTIVATION_GROUPS = {
    "simple": (),
    "lstm": (("rec_i", "rec_f", "rec_o"),),
    "gru": (("rec_z", "rec_r"),),
}
# Keras's defaults, which the report does not repeat.
DEFAULT_ACTIVATIONS = {
    "simple": ["Tanh"],
    "lstm": ["Sigmoid", "Tanh", "Tanh"],
    "gru": ["Sigmoid", "Tanh"],
}


Activation = tuple[str, float | None, float | None]  # ONNX name, alpha, beta


@dataclass
class LoopCell:
    """A recognised loop body: the cell, its activations, which loop variable is what, and
    what each gate sums."""

    cell: str
    activations: list[Activation]  # in ONNX's order
    # Body input positions of x_list, time, output_list, h, [c], kernel, recurrent_kernel,
    # [bias]; with a mask also mask_list, previous_output and, when padded steps output zeros,
    # fill (Keras's zero_output_for_mask, which Bidirectional sets).
    variables: dict[str, int]
    last_only: bool  # return_sequences=False: every step overwrites item 0 of a 1-item list
    gates: list[list[Term]]  # each gate's sum, in Keras's gate order

    @property
    def masked(self) -> bool:
        return "mask_list" in self.variables

    @property
    def zero_fill(self) -> bool:
        return "fill" in self.variables

    @property
    def has_bias(self) -> bool:
        return "bias" in self.variables

    @property
    def reset_after(self) -> bool:
        """GRU: the reset gate multiplies h @ R (ONNX linear_before_reset=1), not h."""
        return any(term.kind == "reset" for term in self.gates[-1])

    def attributes(self) -> dict:
        """The ONNX node's activation attributes (and GRU's linear_before_reset)."""
        names = [name for name, _, _ in self.activations]
        attributes = {"activations": names}
        for position, key in enumerate(("activation_alpha", "activation_beta"), start=1):
            values = [spec[position] for spec in self.activations if spec[position] is not None]
            if values:
                attributes[key] = values
        if self.cell == "gru":
            attributes["linear_before_reset"] = int(self.reset_after)
        return attributes

    def options(self) -> list[str]:
        """What differs from Keras's defaults, for the report."""
        options = [] if self.has_bias else ["no bias"]
        if self.cell == "gru" and not self.reset_after:
            options.append("reset_after=False")
        names = [name for name, _, _ in self.activations]
        if names != DEFAULT_ACTIVATIONS[self.cell]:
            options.append(f"activations {'/'.join(names)}")
        return options


def recognise_body(g: Graph, cells: tuple[str, ...]) -> LoopCell:
    """The Keras recurrent cell that the While body ``g`` runs, or ``NotFused`` saying why."""
    writes = [node for node in g.get_nodes() if node.type == "TensorListSetItem"]
    if len({node.name for node in writes}) != 1:  # tf2onnx may list a node twice
        raise NotFused(f"{len({node.name for node in writes})} output lists, expected 1")
    output_list, position, written = writes[0].input
    bound = {"output_list": output_list, "written": written}
    last_only = match(g, position, Const((0,)), bound)
    if not last_only:
        bound["time"] = position
    masked = match(g, written, Op("SelectV2", ("mask_t", "h_new", "fill")), bound)
    names = ["x_list", "time", "output_list", "kernel", "recurrent_kernel"]
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
    reasons = []
    for cell in sorted(cells, key=list(PATTERNS).index):  # SimpleRNN's pattern matches most
        tried = dict(bound)  # a cell that fails part-way must not leave its bindings
        if match(g, bound["h_new"], PATTERNS[cell], tried):
            try:
                return _recognised(g, cell, tried, names, masked, last_only)
            except NotFused as reason:
                reasons.append(f"as {cell}: {reason}")
    # the first cell whose structure matched is the most specific, and its reason the telling one
    detail = f" ({reasons[0]})" if reasons else ""
    raise NotFused(f"the body is not a Keras cell of {', '.join(cells)} as we fuse them{detail}")


def _recognised(
    g: Graph, cell: str, bound: dict[str, str], names: list[str], masked: bool, last_only: bool
) -> LoopCell:
    """The LoopCell of a body whose output matched ``cell``'s pattern, once its gates, states
    and loop variables are checked."""
    names = list(names)
    gates = _gates(g, cell, bound)
    if "bias" in bound:
        names.append("bias")
    names += STATES[cell]
    if missing := [name for name in names if name not in bound]:
        raise NotFused(f"the cell reads no {', '.join(missing)}")
    if not all(g.get_node_by_output(bound[name]).is_graph_input() for name in names):
        raise NotFused("a cell input is computed inside the loop")
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
    activations = [_onnx_activation(g, bound, name) for name in ACTIVATION_ORDER[cell]]
    for group in ACTIVATION_GROUPS[cell]:
        if len({_onnx_activation(g, bound, name) for name in group}) != 1:
            raise NotFused(f"gates {', '.join(group)} use different activations")
    variables = {name: g.input_names.index(bound[name]) for name in names}
    return LoopCell(cell, activations, variables, last_only, gates)


def _gates(g: Graph, cell: str, bound: dict[str, str]) -> list[list[Term]]:
    """Each gate's terms, in Keras's order; the constants a gate adds must be hard_sigmoid's
    + 3 when that is its activation, and nothing otherwise. GRU's reset gate is found in the
    candidate's sum, so that sum is read first."""
    read = {}
    if cell == "gru":
        read["pre_hh"] = gate_terms(g, bound["pre_hh"], bound, reset=RESET)
        if "pre_r" not in bound:
            raise NotFused("the GRU candidate does not use the reset gate")
    gates = []
    for pre, activation in SUMS[cell].items():
        terms, constants = read[pre] if pre in read else gate_terms(g, bound[pre], bound)
        hard = bound[f"{activation}:form"] == "HardSigmoid"
        if constants != ([3.0] if hard else []):
            raise NotFused(f"{activation} adds constants {constants} to its gate")
        gates.append(terms)
    return gates


def _onnx_activation(g: Graph, bound: dict[str, str], name: str) -> Activation:
    """The ONNX activation with its alpha and beta that the bound activation ``name`` is."""
    form = bound[f"{name}:form"]
    if form == "LeakyRelu":
        return form, float(g.get_node_by_output(bound[name]).get_attr_value("alpha")), None
    return (form, *PARAMETERS.get(form, (None, None)))


def _next(g: Graph, tensor: str) -> str:
    """The body output that becomes loop variable ``tensor`` in the next step."""
    return g.outputs[g.input_names.index(tensor)]
