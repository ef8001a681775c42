"""onnxruntime inference for exported runs. Imports numpy and onnxruntime only."""

from serving.runtime.graph import ExportedGraph, load_graph
from serving.runtime.sine import forecast

__all__ = ["ExportedGraph", "forecast", "load_graph"]
