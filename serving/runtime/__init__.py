"""onnxruntime inference for exported runs: each task's library, functions of plain values
(the command-line side is ``serving.predict_tasks``). Imports numpy and onnxruntime only."""

from serving.runtime.addition import add
from serving.runtime.graph import ExportedGraph, load_graph
from serving.runtime.sine import forecast

__all__ = ["ExportedGraph", "add", "forecast", "load_graph"]
