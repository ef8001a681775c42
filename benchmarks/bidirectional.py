"""python -m benchmarks.bidirectional: one bidirectional ONNX node against two one-way nodes.

A Keras ``Bidirectional`` layer exports as two fused nodes (forward, and the backward layer's
own node), each one-way. ONNX also has a single ``direction="bidirectional"`` node. This
builds both forms with the same random weights for each cell (RNN, GRU, LSTM), size and input
shape, checks that they give the same outputs, and times onnxruntime on each with a fixed
thread count: the measurement behind keeping two nodes. onnxruntime only, no TensorFlow.
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from benchmarks.inference import median_ms
from serving import cli
from serving.errors import UserError

FEATURES = 8
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
SHAPES = {"batch 1 x 10": (1, 10), "batch 32 x 50": (32, 50)}  # (batch, steps)
HEADER = (
    "| cell | units | input | two nodes ms | one bidirectional ms | two vs one |\n"
    "|---|---:|---|---:|---:|---:|"
)


def model_bytes(cell: str, units: int, weights: list[dict], bidirectional: bool) -> bytes:
    """The layer as one bidirectional node, or as a forward and a reverse node, outputs
    (time, batch, 2 * units) either way. ``weights``: W, R, B of each direction."""
    attributes = {"hidden_size": units, **({"linear_before_reset": 1} if cell == "GRU" else {})}
    initializers, nodes = [], []

    def constants(prefix: str, chosen: list[dict]) -> list[str]:
        names = [f"{prefix}{key}" for key in "WRB"]
        for name, key in zip(names, "WRB", strict=True):
            value = np.stack([direction[key] for direction in chosen])
            initializers.append(numpy_helper.from_array(value, name))
        return names

    shape = numpy_helper.from_array(np.array([0, 0, -1], np.int64), "shape")
    axis = numpy_helper.from_array(np.array([1], np.int64), "axis")
    if bidirectional:
        names = constants("both_", weights)
        nodes += [
            helper.make_node(cell, ["x", *names], ["y"], direction="bidirectional", **attributes),
            helper.make_node("Transpose", ["y"], ["y_t"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", ["y_t", "shape"], ["out"]),
        ]
        initializers.append(shape)
    else:
        for direction, chosen in (("forward", weights[0]), ("reverse", weights[1])):
            names = constants(f"{direction}_", [chosen])
            nodes += [
                helper.make_node(
                    cell, ["x", *names], [direction], direction=direction, **attributes
                ),
                helper.make_node("Squeeze", [direction, "axis"], [f"{direction}_y"]),
            ]
        nodes.append(helper.make_node("Concat", ["forward_y", "reverse_y"], ["out"], axis=2))
        initializers.append(axis)
    graph = helper.make_graph(
        nodes,
        f"{cell}_{units}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["time", "batch", FEATURES])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def random_weights(cell: str, units: int, rng: np.random.Generator) -> list[dict]:
    size = GATES[cell] * units
    return [
        {
            "W": rng.normal(scale=0.3, size=(size, FEATURES)).astype(np.float32),
            "R": rng.normal(scale=0.3, size=(size, units)).astype(np.float32),
            "B": rng.normal(scale=0.1, size=(2 * size,)).astype(np.float32),
        }
        for _ in range(2)
    ]


def row(cell: str, units: int, shape: str, threads: int, repeats: int) -> str:
    rng = np.random.default_rng(0)
    weights = random_weights(cell, units, rng)
    batch, steps = SHAPES[shape]
    x = rng.normal(size=(steps, batch, FEATURES)).astype(np.float32)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # the Reshape/axis constants the other form does not use
    two, one = (
        onnxruntime.InferenceSession(
            model_bytes(cell, units, weights, bidirectional),
            options,
            providers=["CPUExecutionProvider"],
        )
        for bidirectional in (False, True)
    )
    difference = np.abs(two.run(None, {"x": x})[0] - one.run(None, {"x": x})[0]).max()
    if difference > 1e-5:
        raise AssertionError(f"{cell} {units}: the two forms differ by {difference:.2e}")
    two_ms, one_ms = (
        median_ms(lambda s=session: s.run(None, {"x": x}), repeats, warmup=5)
        for session in (two, one)
    )
    return f"| {cell} | {units} | {shape} | {two_ms:.3f} | {one_ms:.3f} | {two_ms / one_ms:.2f}x |"


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m benchmarks.bidirectional", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--units", default="16,64,256", help="layer sizes (default 16,64,256)")
    parser.add_argument("--threads", type=cli.positive_int, default=1, help="onnxruntime threads")
    parser.add_argument("--repeats", type=cli.positive_int, default=200, help="calls per timing")
    try:
        args = parser.parse_args(argv)
        try:
            sizes = [int(size) for size in args.units.split(",")]
        except ValueError:
            raise UserError(f"--units must be comma-separated sizes, got {args.units!r}") from None
        if any(size < 1 for size in sizes):
            raise UserError(f"--units must be positive, got {args.units!r}")
    except UserError as error:
        return cli.report(error)
    print(f"onnxruntime {onnxruntime.__version__}, {args.threads} thread(s), {args.repeats} calls")
    print(HEADER)
    with cli.exit_on_interrupt(lambda: "the table stops here"):
        for cell in GATES:
            for units in sizes:
                for shape in SHAPES:
                    print(row(cell, units, shape, args.threads, args.repeats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
