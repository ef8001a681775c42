"""A Keras model this project did not train, as an ``ExportGraph``.

The export writes a Functional model with dict inputs and outputs (``ExportGraph``). A user's
model may be Sequential (which tf2onnx's ``from_keras`` cannot convert), take a list, or name
its tensors in ways a served graph cannot: its twin here runs the same layer objects (the same
weights, no copy) from new inputs, flat, so ``export.onnx.cpu_twin`` reaches every recurrent
layer. Inputs are named after the model's input layers (or its dict keys), outputs after the
layers that produce them (or its dict keys), made valid names for files, TF Serving, ONNX and
Triton. The batch size is left free: a fixed one is what ``build`` or a first call on data
recorded, which a served graph need not keep.
"""

from __future__ import annotations

import inspect
from typing import Any

import keras

from export.model.inputs import input_specs, lengths, sampler
from export.model.loading import KERAS_PACKAGES
from export.model.names import MANIFEST_TASK, safe_name, unique_names
from keras_rnn.errors import UserError
from keras_rnn.graphs import ExportGraph

CELL_KINDS = {
    keras.layers.LSTMCell: "lstm",
    keras.layers.GRUCell: "gru",
    keras.layers.SimpleRNNCell: "simple",
}


def model_graph(model: keras.Model, name: str | None = None) -> tuple[ExportGraph, list[str]]:
    """The graph to export for ``model``, named ``name`` or else after the model, and the
    notes to show the user (no recurrent layer; what parity could not know)."""
    from export import parity

    if not isinstance(model, keras.Model):
        raise UserError(f"expected a keras.Model, got {type(model).__name__}")
    recurrent = recurrent_layers(model)
    stateful = [layer.name for layer in recurrent if getattr(layer, "stateful", False)]
    if stateful:
        raise UserError(
            f"{model.name}: layer {', '.join(stateful)} is stateful (its state carries over from "
            "one call to the next, which a served graph cannot do): rebuild the model with "
            "stateful=False, copy the weights with set_weights, and export that"
        )
    name = name or safe_name(model.name)
    twin, notes = serving_twin(model, name)
    specs, input_notes = input_specs(twin)
    notes += input_notes
    if not recurrent:
        notes.insert(0, f"{name} has no recurrent layer: exported anyway, with nothing to fuse")
    masked = [spec for spec in specs if spec.pad_value is not None]
    maskers = [layer.name for layer in twin._flatten_layers() if _masks(layer)]
    if maskers and not masked:
        notes.append(
            f"{', '.join(maskers)} masks, but no input feeds it directly: parity tries no padding"
        )
    if len(masked) > 1:
        notes.append(
            f"inputs {', '.join(spec.name for spec in masked)} mask: parity tries left padding "
            f"and gaps on {masked[0].name}, right padding on the others"
        )
    # each cell's tolerance (another cell: the loosest); none: the tightest
    tolerances = [
        parity.ATOL.get(CELL_KINDS.get(type(cell)), max(parity.ATOL.values()))
        for layer in recurrent
        for cell in _cells(layer)
    ]
    graph = ExportGraph(
        name=name,
        model=twin,
        inputs={spec.name: (spec.shape, spec.dtype) for spec in specs},
        outputs=list(twin.output),
        sample=sampler(specs),
        lengths=lengths(specs),
        runtime={"task": MANIFEST_TASK},
        masked_input=masked[0].name if masked else None,
        pad_value=masked[0].pad_value if masked else 0,
        atol=max(tolerances, default=min(parity.ATOL.values())),
    )
    return graph, notes


def serving_twin(model: keras.Model, name: str) -> tuple[keras.Model, list[str]]:
    """A Functional model named ``name`` running ``model``'s layers from new inputs with a
    free batch size, with dict inputs and outputs named as the module says; notes on batch
    sizes it freed."""
    try:
        originals = list(model.inputs)
    except (AttributeError, TypeError, ValueError):
        originals = None
    if not originals:
        raise UserError(
            f"model {model.name} has no inputs defined (a subclassed model, or a Sequential "
            "never built): build it on keras.Input, e.g. "
            "keras.Sequential([keras.Input((None, FEATURES)), ...])"
        )
    sequential = isinstance(model, keras.Sequential)  # one input, one output, no dict
    layer_names = [  # a Functional model's layer names must differ from its inputs' names
        layer.name for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)
    ]
    in_names = unique_names(_names(None if sequential else model.input, originals), layer_names)
    inputs = [
        keras.Input(batch_shape=(None, *tensor.shape[1:]), dtype=tensor.dtype, name=new)
        for tensor, new in zip(originals, in_names, strict=True)
    ]
    notes = [
        f"input {new} was built for batch size {tensor.shape[0]}: the export takes any batch size"
        for tensor, new in zip(originals, in_names, strict=True)
        if tensor.shape[0] is not None
    ]
    if sequential:
        outputs = inputs[0]
        for layer in model.layers:
            outputs = layer(outputs)
        outputs = [outputs]
    else:  # what Functional.call and keras.models.clone_model do, with the same layers
        outputs = keras.tree.flatten(model._run_through_graph(inputs))
    structure = None if sequential else model.output
    out_names = unique_names(_names(structure, keras.tree.flatten(model.outputs)), in_names)
    twin = keras.Model(
        dict(zip(in_names, inputs, strict=True)),
        dict(zip(out_names, outputs, strict=True)),
        name=name,
    )
    return twin, notes


def recurrent_layers(model: keras.Model) -> list[keras.layers.RNN]:
    """Every recurrent layer in ``model``, nested ones and both directions of a
    ``Bidirectional`` included."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.RNN)
    ]


def custom_objects(model: keras.Model) -> dict[str, Any]:
    """The classes of ``model``'s layers and the functions they hold (activations, ...) from
    outside Keras, by the names their configs give: ``export.onnx.cpu_twin`` rebuilds layers
    from their configs, which needs these even when the user never registered them."""
    found = {}
    for layer in model._flatten_layers(include_self=True, recursive=True):
        for value in (type(layer), *vars(layer).values()):
            module = getattr(value, "__module__", None) or ""
            if (isinstance(value, type) or inspect.isfunction(value)) and (
                module.split(".")[0] not in KERAS_PACKAGES
            ):
                found[keras.saving.get_registered_name(value)] = value
    return found


def _masks(layer: keras.layers.Layer) -> bool:
    """Whether ``layer`` starts a padding mask."""
    return isinstance(layer, keras.layers.Masking) or getattr(layer, "mask_zero", False) is True


def _cells(layer: keras.layers.RNN) -> list[Any]:
    cell = layer.cell
    return list(cell.cells) if isinstance(cell, keras.layers.StackedRNNCells) else [cell]


def _names(structure: Any, tensors: list[Any]) -> list[str]:
    """A name for each of ``tensors``: its key where ``structure`` is a dict, else the name of
    the layer that makes it."""
    key_of = (
        {id(tensor): key for key, tensor in structure.items()}
        if isinstance(structure, dict)
        else {}
    )
    return [key_of.get(id(t), t._keras_history.operation.name) for t in tensors]
