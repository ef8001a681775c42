"""python -m benchmarks.inference RUN_DIR [RUN_DIR ...]: latency of each exported graph.

For every graph in each run's export: median latency of ``tf.function(model)``, the
SavedModel's ``serving_default`` signature and onnxruntime, at batch 1 and at batch 32 x 50
steps, all with the same fixed thread count, and onnxruntime's speed-up over both. Ratios
come from one run of this command: compare them, not absolute times, across machines.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from keras_rnn import quiet
from keras_rnn.errors import UserError
from keras_rnn.runs import read_json
from serving import cli
from serving.runtime import load_graph

SHAPES = {"batch 1": (1, 10), "batch 32 x 50": (32, 50)}  # (batch, steps)


def median_ms(call: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def random_inputs(inputs: list[dict], batch: int, steps: int, rng) -> dict[str, np.ndarray]:
    """Normal noise shaped by the manifest: None dims become batch, then steps."""
    feed = {}
    for spec in inputs:
        if np.dtype(spec["dtype"]).kind != "f":
            raise UserError(f"input {spec['name']} is {spec['dtype']}: this benchmark feeds floats")
        free = iter((batch, steps))
        shape = [size if size is not None else next(free, 1) for size in spec["shape"]]
        feed[spec["name"]] = rng.normal(size=shape).astype(np.float32)
    return feed


HEADER = (
    "| graph | ONNX recurrent ops | input | tf.function | SavedModel | onnxruntime "
    "| ORT vs tf.function | ORT vs SavedModel |\n|---|---|---|---:|---:|---:|---:|---:|"
)


def benchmark_run(run_dir: Path, threads: int, repeats: int) -> list[str]:
    """One table row per exported graph and input shape."""
    import keras  # TensorFlow is imported here, after main's checks started it quietly
    import tensorflow as tf

    from export.onnx import recurrent_ops
    from export.savedmodel import load_savedmodel

    export = run_dir / "export"
    manifest = read_json(export / "manifest.json")
    op_counts = {
        g["name"]: g["onnx_op_counts"] for g in read_json(export / "parity.json")["graphs"]
    }
    model = keras.models.load_model(run_dir / "model.keras")
    cell = read_json(run_dir / "config.json")["config"]["cell"]
    rng = np.random.default_rng(0)
    rows = []
    for entry in manifest["graphs"]:
        print(f"timing {entry['name']} ({cell}) in {run_dir}", flush=True)  # progress
        specs = {
            spec["name"]: tf.TensorSpec(spec["shape"], spec["dtype"], name=spec["name"])
            for spec in entry["inputs"]
        }
        backends = {
            "tf.function": tf.function(
                lambda inputs: model(inputs, training=False), input_signature=[specs]
            ),
            "SavedModel": load_savedmodel(export / entry["savedmodel"]),
            "onnxruntime": load_graph(export, entry["name"], threads=threads),
        }
        ops = recurrent_ops(op_counts[entry["name"]])
        for label, (batch, steps) in SHAPES.items():
            feed = random_inputs(entry["inputs"], batch, steps, rng)
            ms = time_backends(backends, feed, repeats)
            onnx_ms = ms["onnxruntime"]
            times = " | ".join(f"{value:.3f}" for value in ms.values())
            speedups = f"{ms['tf.function'] / onnx_ms:.1f}x | {ms['SavedModel'] / onnx_ms:.1f}x"
            rows.append(f"| {entry['name']} ({cell}) | {ops} | {label} | {times} | {speedups} |")
    return rows


def time_backends(backends: dict, feed: dict[str, np.ndarray], repeats: int) -> dict[str, float]:
    """Median ms per backend on the same inputs (tensors for tf.function, arrays otherwise)."""
    import tensorflow as tf

    tensors = {name: tf.constant(value) for name, value in feed.items()}
    calls = {
        "tf.function": lambda: backends["tf.function"](tensors),
        "SavedModel": lambda: backends["SavedModel"](feed),
        "onnxruntime": lambda: backends["onnxruntime"](**feed),
    }
    return {name: median_ms(call, repeats) for name, call in calls.items()}


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m benchmarks.inference", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run_dirs", nargs="+", type=Path, help="exported run directories")
    parser.add_argument(
        "--threads", type=int, default=1, help="threads for TF and onnxruntime (default: 1)"
    )
    parser.add_argument(
        "--repeats", type=int, default=50, help="timed calls per cell (default: 50)"
    )
    quiet.add_verbose_flag(parser)
    try:
        args = parser.parse_args(argv)
        if args.threads < 1 or args.repeats < 1:
            raise UserError("--threads and --repeats must be positive")
        for run_dir in args.run_dirs:  # every export is there before TensorFlow starts
            read_json(run_dir / "export" / "manifest.json")
        tf = quiet.start_tensorflow(args.verbose)
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        rows = [
            row
            for run_dir in args.run_dirs
            for row in benchmark_run(run_dir, args.threads, args.repeats)
        ]
    except UserError as error:
        return cli.report(error)
    print(
        f"Median latency in ms, {args.threads} thread(s), {args.repeats} calls after 3 warm-up.\n"
    )
    print(HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    with cli.exit_on_interrupt(lambda: "no table was printed"):
        sys.exit(main())
