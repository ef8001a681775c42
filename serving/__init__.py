"""Serving: the TF Serving container and clients, and a TensorFlow-free onnxruntime runtime."""
