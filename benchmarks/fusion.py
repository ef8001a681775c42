"""python -m benchmarks.fusion: onnxruntime latency of recurrent layers, tf2onnx alone vs fused.

Exports one recurrent layer (features 8, all steps returned) twice through tf2onnx: alone
(a Loop, except for the unmasked LSTM that tf2onnx fuses itself) and with our fusion rewriter
applied to every size. It does so for every cell, layer size, layer option (``--options``:
Keras's defaults, no bias, GRU reset_after=False, hard_sigmoid, relu, recurrent dropout, a
fixed batch size) and with or without a right-padded mask, checks that both give the same
outputs, then times onnxruntime on both at batch 1 x 10 steps and batch 32 x 50 steps with a
fixed thread count. This is the measurement behind ``export.onnx.FUSED``.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from benchmarks.inference import median_ms
from keras_rnn import quiet
from keras_rnn.config import CELLS
from keras_rnn.errors import UserError
from keras_rnn.graphs import ExportGraph
from serving import cli
from serving.runtime.graph import open_session

FEATURES = 8
SHAPES = {"batch 1 x 10": (1, 10), "batch 32 x 50": (32, 50)}  # (batch, steps)
# option: (the cells it applies to, Keras layer arguments); "fixed-batch" instead builds the
# layer for each timed batch size (keras.Input(batch_shape=...)), as a stateful layer has one.
OPTIONS = {
    "default": (CELLS, {}),
    "no-bias": (CELLS, {"use_bias": False}),
    "reset-before": (("gru",), {"reset_after": False}),
    "hard-sigmoid": (("lstm", "gru"), {"recurrent_activation": "hard_sigmoid"}),
    "relu": (CELLS, {"activation": "relu"}),
    "recurrent-dropout": (("lstm", "gru"), {"recurrent_dropout": 0.25}),
    "fixed-batch": (CELLS, {}),
}
HEADER = (
    "| cell | option | units | mask | input | tf2onnx alone | ms | with rewriter | ms "
    "| speed-up |\n|---|---|---:|---|---|---|---:|---|---:|---:|"
)


def layer_graph(
    cell: str, units: int, masked: bool, option: str = "default", batch: int | None = None
) -> ExportGraph:
    """Sequence in, one layer of ``cell`` with ``option``'s arguments, all steps out; the
    batch size is fixed when ``batch`` is given."""
    import keras  # TensorFlow is imported here, after main's checks started it quietly

    keras.utils.set_random_seed(0)
    inputs = keras.Input(batch_shape=(batch, None, FEATURES), name="sequence")
    x = keras.layers.Masking(0.0)(inputs) if masked else inputs
    layer = {"simple": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}
    arguments = OPTIONS[option][1]
    outputs = layer[cell](units, return_sequences=True, name="outputs", **arguments)(x)
    model = keras.Model({"sequence": inputs}, {"outputs": outputs})
    return ExportGraph(
        name=f"{cell}_{units}",
        model=model,
        inputs={"sequence": ((batch, None, FEATURES), "float32")},
        outputs=["outputs"],
        sample=None,
        lengths=(),
    )


def sequences(batch: int, steps: int, masked: bool, rng: np.random.Generator) -> np.ndarray:
    """Normal noise; with a mask, each row keeps 1..steps leading steps."""
    values = rng.normal(size=(batch, steps, FEATURES)).astype(np.float32)
    if masked:
        lengths = rng.integers(1, steps + 1, size=batch)
        values[np.arange(steps)[None, :] >= lengths[:, None]] = 0.0
    return values


def benchmark_layer(
    cell: str, units: int, masked: bool, option: str, threads: int, repeats: int, folder: Path
) -> list[str]:
    from export.onnx import op_counts, recurrent_ops, write_onnx

    mask = "masked" if masked else "unmasked"
    print(f"exporting and timing {cell}, {option}, {units} units, {mask}", flush=True)  # progress
    exported: dict[int | None, dict[str, Path]] = {}  # batch size (None: any) -> paths

    def exports(batch: int | None) -> dict[str, Path]:
        if batch not in exported:
            graph = layer_graph(cell, units, masked, option, batch)
            stem = f"{graph.name}_{option}_{batch}_{mask}"
            exported[batch] = {form: folder / f"{stem}_{form}.onnx" for form in ("alone", "fused")}
            write_onnx(graph, exported[batch]["alone"], fuse={})
            write_onnx(graph, exported[batch]["fused"], fuse={cell: None})
        return exported[batch]

    rng = np.random.default_rng(0)
    rows = []
    for label, (batch, steps) in SHAPES.items():
        paths = exports(batch if option == "fixed-batch" else None)
        sessions = {form: open_session(path, threads) for form, path in paths.items()}
        feed = {"sequence": sequences(batch, steps, masked, rng)}
        alone, fused = (sessions[form].run(None, feed)[0] for form in ("alone", "fused"))
        if not np.allclose(alone, fused, atol=1e-4):
            raise AssertionError(f"{cell} {option}: the two exports give different outputs")
        ms = {
            form: median_ms(lambda s=s, feed=feed: s.run(None, feed), repeats)
            for form, s in sessions.items()
        }
        ops = {form: recurrent_ops(op_counts(path)) for form, path in paths.items()}
        rows.append(
            f"| {cell} | {option} | {units} | {'yes' if masked else 'no'} | {label} "
            f"| {ops['alone']} | {ms['alone']:.3f} | {ops['fused']} | {ms['fused']:.3f} "
            f"| {ms['alone'] / ms['fused']:.2f}x |"
        )
    return rows


def parse_cells(text: str) -> list[str]:
    """Comma-separated cell names; an unknown one is a ``UserError``."""
    return _parse_names(text, CELLS, "cell")


def parse_options(text: str) -> list[str]:
    """Comma-separated option names, or "all"; an unknown one is a ``UserError``."""
    return list(OPTIONS) if text == "all" else _parse_names(text, OPTIONS, "option")


def _parse_names(text: str, known, kind: str) -> list[str]:
    names = text.split(",")
    if unknown := sorted(set(names) - set(known)):
        raise UserError(f"unknown {kind} {', '.join(unknown)}: choose from {', '.join(known)}")
    return names


@contextlib.contextmanager
def scratch_folder() -> Iterator[Path]:
    """A temporary folder for exports, removed afterwards, and on Ctrl-C too."""
    with (
        tempfile.TemporaryDirectory() as folder,
        cli.on_interrupt(lambda: shutil.rmtree(folder, ignore_errors=True)),
    ):
        yield Path(folder)


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m benchmarks.fusion", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--units", default="16,64", help="comma-separated layer sizes (default: 16,64)"
    )
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells")
    parser.add_argument(
        "--options",
        default="default",
        help=f"comma-separated layer options, or all: {', '.join(OPTIONS)} (default: default)",
    )
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default: 1)")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls (default: 200)")
    quiet.add_verbose_flag(parser)
    try:
        args = parser.parse_args(argv)
        cells = parse_cells(args.cells)
        options = parse_options(args.options)
        try:
            sizes = [int(size) for size in args.units.split(",")]
        except ValueError:
            raise UserError(
                f"--units must be comma-separated integers, got {args.units!r}"
            ) from None
        if min(sizes) < 1 or args.threads < 1 or args.repeats < 1:
            raise UserError("--units, --threads and --repeats must be positive")
        quiet.start_tensorflow(args.verbose)
        from export.onnx import FUSED

        with scratch_folder() as folder:
            rows = [
                row
                for cell in cells
                for option in options
                if cell in OPTIONS[option][0]
                for units in sizes
                for masked in (False, True)
                for row in benchmark_layer(
                    cell, units, masked, option, args.threads, args.repeats, folder
                )
            ]
    except UserError as error:
        return cli.report(error)
    print(
        f"onnxruntime median latency in ms, {args.threads} thread(s), {args.repeats} calls "
        f"after 3 warm-up; features {FEATURES}. Shipped fused (cell: up to units): {FUSED}.\n"
    )
    print(HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    with cli.exit_on_interrupt(lambda: "no table was printed"):
        sys.exit(main())
