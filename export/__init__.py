"""Export a finished run to a TF Serving SavedModel and to ONNX, and prove parity."""
