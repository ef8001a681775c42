"""python -m benchmarks.masks: what a fused layer's exactness for every mask costs.

Exports one fused recurrent layer (features 8, all steps returned) with and without a
``Masking`` layer in front, then times onnxruntime on three batches of the same values: the
unmasked layer; the masked layer on right-padded rows (the fast path: the graph only checks
that no row has a gap); and the masked layer on the same batch with one row padded on the left
(valid steps are moved to the front and back, ``export/masking.py``). Each masked result is
checked against Keras first.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.inference import median_ms
from keras_rnn import quiet
from keras_rnn.config import CELLS
from keras_rnn.errors import UserError
from serving import cli

SHAPES = {"batch 1 x 10": (1, 10), "batch 32 x 50": (32, 50)}  # (batch, steps)
HEADER = (
    "| cell | units | input | unmasked ms | masked, right-padded ms | vs unmasked "
    "| masked, one row left-padded ms | vs right-padded |\n"
    "|---|---:|---|---:|---:|---:|---:|---:|"
)


def left_padded(values: np.ndarray) -> np.ndarray:
    """``values`` whose first row has its valid steps moved to the end (padding first)."""
    row = values[0]
    valid = np.any(row != 0, axis=-1)
    moved = values.copy()
    moved[0] = np.concatenate([row[~valid], row[valid]])
    return moved


def benchmark_cell(cell: str, units: int, threads: int, repeats: int, folder: Path) -> list[str]:
    import keras

    from benchmarks.fusion import layer_graph, sequences
    from export.onnx import session, write_onnx

    print(f"exporting and timing {cell}, {units} units", flush=True)  # progress
    graphs = {masked: layer_graph(cell, units, masked) for masked in (False, True)}
    sessions = {}
    for masked, graph in graphs.items():
        path = folder / f"{graph.name}_{masked}.onnx"
        write_onnx(graph, path, fuse={cell: None})
        sessions[masked] = session(path, threads)
    rng = np.random.default_rng(0)
    rows = []
    for label, (batch, steps) in SHAPES.items():
        right = sequences(batch, steps, True, rng)
        right[0, -1] = 0.0  # at least one padded step, so that the left-padded row differs
        feeds = {
            "unmasked": (False, right),
            "right": (True, right),
            "left": (True, left_padded(right)),
        }
        for name, (masked, values) in feeds.items():
            if masked:
                expected = keras.ops.convert_to_numpy(graphs[True].model(values)["outputs"])
                (actual,) = sessions[True].run(None, {"sequence": values})
                if not np.allclose(actual, expected, atol=1e-4):
                    raise AssertionError(f"{cell}: ONNX differs from Keras on {name} padding")
        ms = {
            name: median_ms(
                lambda s=sessions[masked], v=values: s.run(None, {"sequence": v}), repeats
            )
            for name, (masked, values) in feeds.items()
        }
        rows.append(
            f"| {cell} | {units} | {label} | {ms['unmasked']:.4f} | {ms['right']:.4f} "
            f"| {ms['right'] / ms['unmasked']:.2f}x | {ms['left']:.4f} "
            f"| {ms['left'] / ms['right']:.2f}x |"
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m benchmarks.masks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--units", type=int, default=64, help="layer size (default: 64)")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default: 1)")
    parser.add_argument("--repeats", type=int, default=300, help="timed calls (default: 300)")
    quiet.add_verbose_flag(parser)
    try:
        args = parser.parse_args(argv)
        cells = args.cells.split(",")
        if unknown := sorted(set(cells) - set(CELLS)):
            raise UserError(f"unknown cell {', '.join(unknown)}: choose from {', '.join(CELLS)}")
        if min(args.units, args.threads, args.repeats) < 1:
            raise UserError("--units, --threads and --repeats must be positive")
        quiet.start_tensorflow(args.verbose)
        with (
            tempfile.TemporaryDirectory() as folder,
            cli.on_interrupt(lambda: shutil.rmtree(folder, ignore_errors=True)),
        ):
            rows = [
                row
                for cell in cells
                for row in benchmark_cell(
                    cell, args.units, args.threads, args.repeats, Path(folder)
                )
            ]
    except UserError as error:
        return cli.report(error)
    print(
        f"\nonnxruntime median latency in ms, {args.threads} thread(s), {args.repeats} calls "
        "after 3 warm-up; every layer fused; features 8.\n"
    )
    print(HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    with cli.exit_on_interrupt(lambda: "no table was printed"):
        sys.exit(main())
