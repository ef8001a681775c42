"""Fuse Keras 3 recurrent layers into ONNX ``LSTM``, ``GRU`` and ``RNN`` nodes in tf2onnx.

On its own tf2onnx fuses only an unmasked Keras LSTM. Every other Keras 3 layer reaches it as a
functional ``While`` whose body its patterns (written for tf.keras 2) do not recognise, so it
becomes an ONNX ``Loop``. ``FusionRewriter`` goes into ``tf2onnx.convert.from_keras`` as a
``custom_rewriter``. tf2onnx calls it on every loop body first: it records the cells it
recognises there. Then it is called on the graph that holds the loops, where it swaps each
recognised ``While`` for one fused node. Whatever it does not recognise exactly stays a
``Loop``, which is correct, only slower, and ``report`` says why.

Recognising a body is ``export/fusion_cells.py`` (the cell patterns, over the tree matcher of
``export/fusion_match.py``, and each gate's weighted sum read by ``export/fusion_terms.py``);
this module builds the fused nodes. The patterns are the graphs Keras 3.15's TensorFlow backend
emits (``use_cudnn=False``), with the cell's operands in Keras's order (a Keras release that
reorders them loses fusion, not correctness); the sums are read in any order and form (one
MatMul or one per gate, MatMul or tf2onnx's Gemm, with or without a bias). Semantics kept:

- Weights: Keras LSTM gates i, f, c, o become ONNX i, o, f, c. Keras GRU gates z, r, h keep
  their order: ``reset_after=True`` is ``linear_before_reset=1`` with both bias rows,
  ``reset_after=False`` is ``linear_before_reset=0`` with the one bias as ONNX's input bias
  (the recurrent bias zeros). Without a bias the node has no B (zeros).
- Activations: the ONNX activation that is the same function (hard_sigmoid is HardSigmoid
  alpha 1/6, beta 0.5; linear is Affine alpha 1, beta 0), alphas and betas as onnxruntime
  reads them.
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

from dataclasses import dataclass, field

import numpy as np
from tf2onnx.graph import Graph, Node
from tf2onnx.graph_builder import GraphBuilder

from export import masking
from export.fusion_cells import GATES, STATES, LoopCell, NotFused, recognise_body
from export.fusion_terms import check_gates

ONNX_OP = {"simple": "RNN", "lstm": "LSTM", "gru": "GRU"}


@dataclass
class FusionRewriter:
    """A tf2onnx ``custom_rewriter`` fusing the layers it recognises of the cells in ``fuse``,
    which maps each cell to the largest layer (units) to fuse, None for any size. ``report``
    has one line per While it saw: what it became, or why it stayed a Loop."""

    fuse: dict[str, int | None]
    report: list[str] = field(default_factory=list)
    _bodies: dict[str, LoopCell | NotFused] = field(default_factory=dict)

    def __call__(self, g: Graph, ops: list[Node]) -> list[Node]:
        # A bug of ours must not end the conversion (tf2onnx would log it and drop the
        # report): the loop stays a Loop with the error as its reason, and parity still
        # checks whatever graph results.
        try:
            self._bodies[g.graph_name] = recognise_body(g, tuple(self.fuse))
        except NotFused as reason:
            self._bodies[g.graph_name] = reason
        except Exception as error:
            self._bodies[g.graph_name] = NotFused(f"the rewriter failed: {_described(error)}")
        for node in ops:
            if node.is_while():
                try:
                    outcome = self._fuse_loop(g, node)
                except NotFused as reason:
                    outcome = f"left as Loop ({reason})"
                except Exception as error:
                    outcome = f"left as Loop (the rewriter failed: {_described(error)})"
                self.report.append(f"{node.name}: {outcome}")
        return g.get_nodes()

    def _fuse_loop(self, g: Graph, loop: Node) -> str:
        body = self._bodies.get(loop.get_attr_str("body"), NotFused("its body was not seen"))
        if isinstance(body, NotFused):
            raise body
        return _fuse(g, loop, body, self.fuse[body.cell])


def _described(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


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
    constants = [  # no bias: ONNX's B is optional, zeros by default
        "" if value is None else g.make_const(f"{scope}/{name}", value).output[0]
        for name, value in weights.items()
    ]
    fused = g.make_node(
        ONNX_OP[body.cell],
        [x, *constants, lengths, *initial],
        attr={"hidden_size": units, "direction": direction, **body.attributes()},
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
    options = "".join(f", {option}" for option in body.options())
    last = ", last output" if body.last_only else ""
    return f"{ONNX_OP[body.cell]} ({direction}{padding}{last}{options})"


def _weights(g: Graph, loop: Node, body: LoopCell) -> tuple[dict[str, np.ndarray | None], int]:
    """The loop's constant weights as ONNX's W, R and B (None without a bias), and the number
    of units, once every gate is checked to sum what the ONNX node computes."""
    names = ["kernel", "recurrent_kernel", *(["bias"] if body.has_bias else [])]
    inputs = [loop.input[body.variables[name]] for name in names]
    if not all(g.is_const(tensor) for tensor in inputs):
        raise NotFused("weights are not constants")
    kernel, recurrent_kernel, *bias = (g.get_tensor_value(t, as_list=False) for t in inputs)
    units = recurrent_kernel.shape[0]
    gates = GATES[body.cell]
    # GRU reset_after has an input and a recurrent bias row; the others one bias vector
    two_rows = body.cell == "gru" and body.reset_after
    bias_shape = (2, gates * units) if two_rows else (gates * units,)
    if (
        kernel.dtype != np.float32
        or kernel.shape[1:] != (gates * units,)
        or recurrent_kernel.shape != (units, gates * units)
        or any(b.shape != bias_shape for b in bias)
    ):
        raise NotFused("weights are not float32 of the shapes the cell needs")
    check_gates(body.gates, body.cell, units, len(bias_shape) if bias else None)
    return _onnx_weights(body.cell, kernel, recurrent_kernel, bias[0] if bias else None), units


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
    if not (zeros.type == "ZerosLike" or _is_zeros(g, zeros)):
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
    """Whether ``node`` is zeros: Keras's default initial state, ``Fill(shape, 0)``, or, when
    every shape is static (a fixed batch size), the constant TensorFlow folds that into."""
    if node.is_const():
        return not node.get_tensor_value(as_list=False).any()
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
    cell: str, kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray | None
) -> dict[str, np.ndarray | None]:
    """W, R and B as ONNX wants them: (1, gates*U, F), (1, gates*U, U), (1, 2*gates*U)."""
    if cell == "lstm":  # Keras i, f, c, o -> ONNX i, o, f, c
        order = [0, 3, 1, 2]
        kernel, recurrent_kernel, bias = (
            None if w is None else np.concatenate([np.split(w, 4, axis=-1)[g] for g in order], -1)
            for w in (kernel, recurrent_kernel, bias)
        )
    values = {"W": kernel.T[None], "R": recurrent_kernel.T[None], "B": None}
    if bias is not None:
        # GRU reset_after has both bias rows (input, recurrent); otherwise ONNX's recurrent bias
        # is zeros, which ONNX adds to the input one.
        biases = bias.reshape(-1) if bias.ndim == 2 else np.concatenate([bias, np.zeros_like(bias)])
        values["B"] = biases[None]
    return {
        name: None if value is None else np.ascontiguousarray(value, np.float32)
        for name, value in values.items()
    }
