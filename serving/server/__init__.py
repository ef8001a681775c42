"""python -m serving.server: the ONNX graphs of exported runs behind TF Serving's REST API and
the Open Inference Protocol (HTTP and gRPC), with onnxruntime and no TensorFlow."""
