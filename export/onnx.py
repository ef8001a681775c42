"""ONNX through tf2onnx (opset 17), from a CPU build of the model."""

from __future__ import annotations

import contextlib
import logging
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import onnx
import tf2onnx
from tf2onnx import utils
from tf2onnx.graph import Graph, Node

from export import masking
from export.fusion import FusionRewriter
from export.savedmodel import input_specs
from keras_rnn.errors import UserError
from keras_rnn.graphs import ExportGraph
from serving.runtime.graph import open_session

OPSET = 17
UNFUSED_OPS = ("Loop", "Scan")  # a recurrent layer tf2onnx could not turn into LSTM/GRU/RNN
RECURRENT_OPS = ("LSTM", "GRU", "RNN", *UNFUSED_OPS)
# Which layers become fused ONNX nodes: cell -> largest layer (units) fused, None for any size.
# Measured by `python -m benchmarks.fusion --options all` (docs/export.md): fused LSTM and GRU are
# faster at every size and shape, with every layer option; onnxruntime's RNN kernel is faster
# at batch 1 but up to 3x slower than the Loop at batch 32 above 16 units (tanh; cheaper
# activations such as relu break even near 64), so larger SimpleRNN layers stay Loops.
FUSED = {"lstm": None, "gru": None, "simple": 16}


def cpu_twin(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with ``use_cudnn=False`` on every recurrent layer, weights copied.

    A model traced on a GPU contains CudnnRNNV3, which tf2onnx cannot convert. use_cudnn is not
    part of a layer's config (and Bidirectional resets it, keras#21533), so it is set on the
    built layers, both directions and nested models included.
    """
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    for layer in _layers(twin):
        if hasattr(layer, "use_cudnn"):
            layer.use_cudnn = False
    return twin


def _layers(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """``layer`` and every layer inside it: a nested model's layers, and both directions of a
    ``Bidirectional``, at any depth."""
    yield layer
    inner = [*getattr(layer, "layers", ())]
    inner += [getattr(layer, name, None) for name in ("forward_layer", "backward_layer", "layer")]
    for sublayer in inner:
        if isinstance(sublayer, keras.layers.Layer):
            yield from _layers(sublayer)


def write_onnx(graph: ExportGraph, path: Path, fuse: dict[str, int | None] = FUSED) -> list[str]:
    """Convert ``graph`` (inputs and outputs keep their names), fusing recurrent layers as
    ``fuse`` says (see ``FusionRewriter``), and prove onnxruntime loads it: tf2onnx can write
    a model that onnxruntime refuses without raising (a TensorFlow op it cannot convert is a
    ``UserError`` naming it and its layer). Returns one line per loop: what it became."""
    rewriter = FusionRewriter(fuse)
    model = _positional(cpu_twin(graph.model))
    specs = input_specs(graph)
    with _unconverted_ops_unlogged():
        tf2onnx.convert.from_keras(
            model,
            input_signature=[specs[tensor.name] for tensor in model.inputs],
            opset=OPSET,
            custom_op_handlers=EXTRA_OPS,
            custom_rewriter=[rewriter],
            output_path=str(path),
        )
    _check_converted(graph, path)
    open_session(path)
    return rewriter.report


def _erfc(g: Graph, node: Node, name: str, args: list) -> None:
    """Erfc(x) = 1 - Erf(x) (Keras's exact gelu)."""
    erf = masking.node(g, "Erf", [node.input[0]], node.name)
    g.replace_inputs(node, [_one(g, node), erf])
    node.type = "Sub"


def _expm1(g: Graph, node: Node, name: str, args: list) -> None:
    """Expm1(x) = Exp(x) - 1 (Keras's celu)."""
    exp = masking.node(g, "Exp", [node.input[0]], node.name)
    g.replace_inputs(node, [exp, _one(g, node)])
    node.type = "Sub"


def _one(g: Graph, node: Node) -> str:
    """A constant 1 of the dtype of ``node``'s input."""
    dtype = utils.map_onnx_to_numpy_type(g.get_dtype(node.input[0]))
    return masking.const(g, np.array(1, dtype), node.name)


# TensorFlow ops that Keras activations emit and tf2onnx has no conversion for, written with
# ONNX ops (tf2onnx's custom_op_handlers: op -> (handler, arguments)).
EXTRA_OPS = {"Erfc": (_erfc, []), "Expm1": (_expm1, [])}


class _UnconvertedOpLines(logging.Filter):
    """Drops tf2onnx's log lines about TensorFlow ops it could not convert: ``write_onnx``
    names them in its error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Tensorflow op [", "Unsupported ops"))


@contextlib.contextmanager
def _unconverted_ops_unlogged() -> Iterator[None]:
    """``_UnconvertedOpLines`` on tf2onnx's converter log while the block runs."""
    logger, quiet = logging.getLogger("tf2onnx.tfonnx"), _UnconvertedOpLines()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _check_converted(graph: ExportGraph, path: Path) -> None:
    """Raise ``UserError`` naming each TensorFlow op that tf2onnx left in the ONNX file at
    ``path`` (it writes such a file without raising) and the layer computing it."""
    layers = {layer.name for layer in _layers(graph.model)} - {graph.model.name}
    found = sorted(
        {
            f"{node.op_type} in layer {_layer_of(node.name, layers)}"
            for node in _nodes(onnx.load(str(path)).graph)
            if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type)
        }
    )
    if found:
        raise UserError(
            f"{graph.name} cannot be converted to ONNX: tf2onnx {tf2onnx.__version__} has no "
            f"conversion for the TensorFlow op {', '.join(found)}: compute that layer with "
            "other operations (another activation, for example)"
        )


def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph``, those of its subgraphs (loop bodies, branches) included."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for inner in [attribute.g] if attribute.HasField("g") else attribute.graphs:
                yield from _nodes(inner)


def _layer_of(node_name: str, layers: set[str]) -> str:
    """The outermost of ``layers`` that the TensorFlow node ``node_name`` is inside (its name
    scope, where Keras adds ``_1``, ``_2``, ... to a name), else the node's name."""
    for scope in node_name.split("/")[:-1]:
        for name in (scope, re.sub(r"_\d+$", "", scope)):
            if name in layers:
                return name
    return node_name


def _positional(model: keras.Model) -> keras.Model:
    """The same graph, taking its inputs as a list and naming its outputs by their dict keys:
    from_keras calls a model with a list of inputs, and names each output after its layer.
    (from_function would avoid both but turns captured constants, such as normalisation
    statistics, into graph inputs.)"""
    wrapper = keras.Model(model.inputs, model.outputs, name=model.name)
    key_of = {id(tensor): key for key, tensor in model.output.items()}
    wrapper.output_names = [key_of[id(tensor)] for tensor in wrapper.outputs]
    return wrapper


def op_counts(path: Path) -> dict[str, int]:
    """How many nodes of each op type the top-level graph has."""
    return dict(sorted(Counter(node.op_type for node in onnx.load(str(path)).graph.node).items()))


def recurrent_ops(counts: dict[str, int]) -> str:
    """The recurrent ops among ``counts`` as text, e.g. "2 LSTM" or "1 Loop"; "none" if none."""
    return ", ".join(f"{n} {op}" for op, n in counts.items() if op in RECURRENT_OPS) or "none"
