"""ONNX through tf2onnx (opset 17), from a CPU build of the model."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import keras
import onnx
import onnxruntime
import tf2onnx

from export.savedmodel import input_specs
from keras_rnn.graphs import ExportGraph

OPSET = 17
UNFUSED_OPS = ("Loop", "Scan")  # a recurrent layer tf2onnx could not turn into LSTM/GRU/RNN
RECURRENT_OPS = ("LSTM", "GRU", "RNN", *UNFUSED_OPS)


def cpu_twin(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with ``use_cudnn=False`` on every recurrent layer, weights copied.

    A model traced on a GPU contains CudnnRNNV3, which tf2onnx cannot convert. use_cudnn is not
    part of a layer's config (and Bidirectional resets it, keras#21533), so it is set on the
    built layers, both directions included.
    """
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    for layer in twin.layers:
        for inner in (
            layer,
            getattr(layer, "forward_layer", None),
            getattr(layer, "backward_layer", None),
        ):
            if hasattr(inner, "use_cudnn"):
                inner.use_cudnn = False
    return twin


def write_onnx(graph: ExportGraph, path: Path) -> None:
    """Convert ``graph`` (inputs and outputs keep their names) and prove onnxruntime loads it:
    tf2onnx can write a model that onnxruntime refuses without raising."""
    model = cpu_twin(graph.model)
    specs = input_specs(graph)
    ordered = [specs[tensor.name] for tensor in model.inputs]
    with warnings.catch_warnings():
        # from_keras calls the model with a list where it takes a dict of one input: Keras
        # warns but maps it right (parity checks the result). from_function would avoid the
        # warning but turns captured constants (normalisation statistics) into graph inputs.
        warnings.filterwarnings("ignore", "The structure of `inputs` doesn't match", UserWarning)
        tf2onnx.convert.from_keras(
            model, input_signature=ordered, opset=OPSET, output_path=str(path)
        )
    session(path)


def op_counts(path: Path) -> dict[str, int]:
    """How many nodes of each op type the top-level graph has."""
    return dict(sorted(Counter(node.op_type for node in onnx.load(str(path)).graph.node).items()))


def session(path: Path) -> onnxruntime.InferenceSession:
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def recurrent_ops(counts: dict[str, int]) -> str:
    """The recurrent ops among ``counts`` as text, e.g. "2 LSTM" or "1 Loop"; "none" if none."""
    return ", ".join(f"{n} {op}" for op, n in counts.items() if op in RECURRENT_OPS) or "none"
