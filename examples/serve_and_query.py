"""Serve an exported forecaster in-process, and ask it over TF Serving's REST API and with
tritonclient.

A walkthrough to read top to bottom: it starts the project's server (``python -m
serving.server``'s functions, in this process) on an export, asks it the same question
three ways (TF Serving's REST API through ``serving.clients``, and the Open Inference
Protocol through tritonclient over HTTP and gRPC), checks that each answer is onnxruntime's
own, and stops the server as a deployment would, with SIGTERM.

    python examples/serve_and_query.py [DIR] [--quick]

DIR is a folder holding ``export/``, such as the OUT_DIR of ``examples/forecast_a_series.py``;
given one, nothing here imports TensorFlow. Without it, the example first trains a small sine
forecaster for 20 epochs (``--quick``: 2, what the tests run) and exports it into a temporary
folder. Run it from the repository root after ``pip install .`` (or with ``PYTHONPATH=.``);
it takes about 15 seconds on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import tempfile
import threading
from pathlib import Path

import numpy as np
import tritonclient.grpc
import tritonclient.http

from serving.clients import connect
from serving.runtime import load_graph
from serving.server.app import Settings, serve
from serving.server.models import load_runs

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("dir", nargs="?", type=Path, help="a folder holding export/")
parser.add_argument("--quick", action="store_true", help="train 2 epochs instead of 20")
args = parser.parse_args()

# ## Something to serve
#
# The server serves every ONNX graph of the `export/` folders it is given. Without one, we
# make one: the sine task's forecaster on its embedded noisy sine, fitted briefly and exported
# by `export_model` (examples/forecast_a_series.py tells this part at length). The training
# side is imported only here: serving needs numpy, onnxruntime, aiohttp and grpcio.
temporary = None
folder = args.dir
if folder is None:
    import keras

    from export.model import export_model
    from keras_rnn.tasks.sine import Config
    from keras_rnn.tasks.sine import task as sine

    temporary = tempfile.TemporaryDirectory()
    folder = Path(temporary.name)
    config = Config(epochs=2 if args.quick else 20)
    keras.utils.set_random_seed(config.seed)
    data = sine.make_datasets(config)
    model = sine.build_model(config, data)
    model.compile(keras.optimizers.Adam(config.learning_rate), **sine.compile_args(config, data))
    model.fit(data.train, validation_data=data.val, epochs=config.epochs, shuffle=False, verbose=0)
    export_model(model, folder / "export")

# ## The question, and onnxruntime's own answer
#
# Two windows of 24 values, as one batch of shape (2, 24, 1) (the forecaster takes windows of
# any length). `load_graph` opens the export's ONNX graph with onnxruntime, as the server
# does: its answer is the one to match.
graph = load_graph(folder / "export")
steps = np.linspace(0.0, 6.0, 24)
windows = np.stack([np.sin(steps), np.cos(steps)]).astype(np.float32)[..., None]
direct = graph(window=windows)["next_value"]
print(f"graph {graph.name}; onnxruntime's answer: {direct[:, 0]}")

# ## The server, in this process
#
# `load_runs` opens every ONNX graph under the folders' `export/` (one onnxruntime session
# each, shared by the worker threads), and `serve` is the server's event loop: HTTP with
# TF Serving's REST API (/v1) and the Open Inference Protocol (/v2), and the Open Inference
# Protocol over gRPC. Port 0 lets the system pick free ports; we listen on 127.0.0.1 only.
registry, _ = load_runs([folder])
settings = Settings(host="127.0.0.1", http_port=0, grpc_port=0, log_requests=False)


# `serve` runs until the process receives SIGTERM or SIGINT, and calls `ready` with the ports
# once it listens. The questions are asked from another thread (the event loop must keep
# running to answer them), which then sends this process SIGTERM: the server stops taking
# requests, lets those in flight finish, and `serve` returns.
answers: dict[str, np.ndarray] = {}  # by protocol


def ask(http_port: int, grpc_port: int) -> None:
    try:
        # TF Serving's REST API: what `serving.clients.connect` speaks, to this server or to
        # TF Serving itself. The answer holds every output, by name.
        rest = connect(f"http://127.0.0.1:{http_port}")
        answers["TF Serving REST"] = rest.predict(graph.name, {"window": windows})["next_value"]
        rest.close()

        # The Open Inference Protocol (KServe v2, Triton's API) with Triton's own clients: the
        # same calls over HTTP and over gRPC, only the module differs.
        for protocol, triton, port in (
            ("HTTP", tritonclient.http, http_port),
            ("gRPC", tritonclient.grpc, grpc_port),
        ):
            client = triton.InferenceServerClient(f"127.0.0.1:{port}")
            request = triton.InferInput("window", list(windows.shape), "FP32")
            request.set_data_from_numpy(windows)
            wanted = [triton.InferRequestedOutput("next_value")]
            result = client.infer(graph.name, [request], outputs=wanted)
            answers[f"tritonclient {protocol}"] = result.as_numpy("next_value")
            client.close()
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # stop the server, also when a question failed


def ready(http_port: int, grpc_port: int) -> None:
    print(f"listening on http://127.0.0.1:{http_port} and grpc 127.0.0.1:{grpc_port}")
    threading.Thread(target=ask, args=(http_port, grpc_port)).start()


stopped_on = asyncio.run(serve(registry, settings, ready))
print(f"server stopped on {stopped_on}")

# ## The answers
#
# Each protocol carries float32 values exactly (JSON with enough digits, or raw bytes), so
# each answer is onnxruntime's to the last bit: the largest difference is 0.
for protocol in ("TF Serving REST", "tritonclient HTTP", "tritonclient gRPC"):
    answer = answers[protocol]  # a KeyError here: that question failed (see its traceback)
    difference = np.abs(answer - direct).max()
    print(f"{protocol:<18} {answer[:, 0]}  largest difference {difference:.1e}")

if temporary:
    temporary.cleanup()
