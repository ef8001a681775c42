"""python -m benchmarks.converter: a Keras model built in a few lines, through tf2onnx alone
and through ``python -m export.model``.

The model is docs/export.md's: a Sequential masked bidirectional GRU tagger. tf2onnx's
``from_keras`` fails on a Sequential model, so "tf2onnx alone" is ``from_function`` on the
model, as a user would fall back to. Both ONNX files run in onnxruntime (1 thread) on the same
right-padded inputs; the table gives their top-level node counts, recurrent ops and median
latency, and the largest difference between the two files' outputs.
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.inference import median_ms
from keras_rnn import quiet
from serving import cli
from serving.errors import UserError
from serving.runtime.graph import open_session

FEATURES, UNITS, TAGS, STEPS = 8, 64, 5, 50
SHAPES = {"batch 1 x 50": 1, "batch 32 x 50": 32}
HEADER = (
    "| ONNX file | top-level nodes | recurrent ops | input | ms | speed-up |\n"
    "|---|---:|---|---|---:|---:|"
)
RECURRENT = ("Loop", "Scan", "LSTM", "GRU", "RNN")


def tagger():
    """docs/export.md's model."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((None, FEATURES), name="frames"),
            keras.layers.Masking(0.0),
            keras.layers.Bidirectional(keras.layers.GRU(UNITS, return_sequences=True)),
            keras.layers.Dense(TAGS, name="tags"),
        ],
        name="tagger",
    )


def tf2onnx_alone(model, path: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, None, FEATURES), tf.float32, name="frames"),)
    tf2onnx.convert.from_function(
        tf.function(lambda frames: model(frames)),
        input_signature=spec,
        opset=17,
        output_path=str(path),
    )


def ops(path: Path) -> tuple[int, str]:
    import onnx

    counts = collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)
    recurrent = ", ".join(f"{counts[op]} {op}" for op in RECURRENT if counts[op])
    return sum(counts.values()), recurrent


def inputs(batch: int) -> np.ndarray:
    """Normal noise, each row right-padded with zeros after 1..STEPS valid steps."""
    rng = np.random.default_rng(batch)
    values = rng.normal(size=(batch, STEPS, FEATURES)).astype(np.float32)
    lengths = rng.integers(1, STEPS + 1, size=batch)
    values[np.arange(STEPS)[None, :] >= lengths[:, None]] = 0.0
    return values


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m benchmarks.converter", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--repeats", type=cli.positive_int, default=200, help="calls per timing")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up")
    try:
        args = parser.parse_args(argv)
    except UserError as error:
        return cli.report(error)
    with cli.exit_on_interrupt(lambda: "no table was printed"):
        quiet.start_tensorflow(args.verbose)
        from export.model import export_model

        with tempfile.TemporaryDirectory() as folder:
            model = tagger()
            alone = Path(folder, "alone.onnx")
            tf2onnx_alone(model, alone)
            report = export_model(model, Path(folder, "converted"), name="tagger")
            files = {
                "tf2onnx alone (from_function)": alone,
                "python -m export.model": Path(folder, "converted", "onnx", "tagger.onnx"),
            }
            sessions = {label: open_session(path, threads=1) for label, path in files.items()}
            counts = {label: ops(path) for label, path in files.items()}
            rows, difference = [], 0.0
            for shape, batch in SHAPES.items():
                x = inputs(batch)
                answers = [
                    session.run(None, {session.get_inputs()[0].name: x})[0]
                    for session in sessions.values()
                ]
                difference = max(difference, float(np.abs(answers[0] - answers[1]).max()))
                times = {
                    label: median_ms(
                        lambda s=session, x=x: s.run(None, {s.get_inputs()[0].name: x}),
                        args.repeats,
                    )
                    for label, session in sessions.items()
                }
                baseline = times["tf2onnx alone (from_function)"]
                for label, ms in times.items():
                    nodes, recurrent = counts[label]
                    rows.append(
                        f"| {label} | {nodes} | {recurrent} | {shape} | {ms:.3f} "
                        f"| {baseline / ms:.1f}x |"
                    )
    print(
        f"parity of the export: {'ok' if report['ok'] else 'FAILED'}; "
        f"onnxruntime 1 thread, {args.repeats} calls"
    )
    print(HEADER)
    print("\n".join(rows))
    print(f"largest difference between the two files' outputs: {difference:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
