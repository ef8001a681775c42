"""Which layers of a Keras model take each of its inputs, looking inside nested models:
``embedding_sizes`` gives every export's manifest (a task's or a user's model) the ids each
input takes, and ``export.model.inputs`` draws parity inputs from the same."""

from __future__ import annotations

import keras


def embedding_sizes(model: keras.Model) -> dict[str, int]:
    """The ids each integer input of ``model`` takes, by input name: the smallest
    ``input_dim`` of the Embeddings it feeds (in nested models too). Inputs that feed no
    Embedding are left out: nothing says which integers they take."""
    structure = model.input
    named = (
        structure.items() if isinstance(structure, dict) else [(t.name, t) for t in model.inputs]
    )
    sizes = {}
    for name, tensor in named:
        dims = [
            layer.input_dim
            for layer in consumers(model, tensor)
            if isinstance(layer, keras.layers.Embedding)
        ]
        if dims and "int" in keras.backend.standardize_dtype(tensor.dtype):
            sizes[name] = min(dims)
    return sizes


def consumers(model: keras.Model, tensor: keras.KerasTensor) -> list[keras.layers.Layer]:
    """The layers of ``model`` that take ``tensor`` as an input, looking inside nested models
    (whose input it becomes)."""
    found = []
    for layer in model.layers:
        for node in layer._inbound_nodes:
            inputs = node.input_tensors
            for position, candidate in enumerate(inputs):
                if candidate is not tensor:
                    continue
                if isinstance(layer, keras.Model) and len(layer.inputs) == len(inputs):
                    found += consumers(layer, layer.inputs[position])
                else:
                    found.append(layer)
    return found
