"""ONNX through tf2onnx (opset 17), from a CPU build of the model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import keras
import onnx
import tf2onnx

from export.fusion import FusionRewriter
from export.savedmodel import input_specs
from keras_rnn.graphs import ExportGraph
from serving.runtime.graph import open_session

OPSET = 17
UNFUSED_OPS = ("Loop", "Scan")  # a recurrent layer tf2onnx could not turn into LSTM/GRU/RNN
RECURRENT_OPS = ("LSTM", "GRU", "RNN", *UNFUSED_OPS)
# Which layers become fused ONNX nodes: cell -> largest layer (units) fused, None for any size.
# Measured by `python -m benchmarks.fusion --options all` (README): fused LSTM and GRU are
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
    a model that onnxruntime refuses without raising. Returns one line per loop: what it
    became."""
    rewriter = FusionRewriter(fuse)
    model = _positional(cpu_twin(graph.model))
    specs = input_specs(graph)
    tf2onnx.convert.from_keras(
        model,
        input_signature=[specs[tensor.name] for tensor in model.inputs],
        opset=OPSET,
        custom_rewriter=[rewriter],
        output_path=str(path),
    )
    open_session(path)
    return rewriter.report


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
