"""python -m benchmarks.masks: what a fused layer's exactness for every mask costs.

Exports one fused recurrent layer (features 8, all steps returned) behind a ``Masking``
layer, and times onnxruntime on:
- the same graph with each ``If`` replaced by its right-padding branch: no check, exact for
  right padding only (what the export was before it handled every mask);
- the exported graph on right-padded rows (the fast path: only the check is added);
- the exported graph on the same batch with one row padded on the left (valid steps are moved
  to the front and back, ``export/masking.py``).
Every result is checked against Keras first.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx

from benchmarks.fusion import parse_cells, scratch_folder
from benchmarks.inference import median_ms
from keras_rnn import quiet
from keras_rnn.config import CELLS
from keras_rnn.errors import UserError
from serving import cli
from serving.runtime.graph import open_session, padded_steps

SHAPES = {"batch 1 x 10": (1, 10), "batch 32 x 50": (32, 50)}  # (batch, steps)
HEADER = (
    "| cell | units | input | no check ms | with the check ms | check costs "
    "| one row left-padded ms | vs right-padded |\n"
    "|---|---:|---|---:|---:|---:|---:|---:|"
)


def left_padded(values: np.ndarray) -> np.ndarray:
    """``values`` whose first row has its valid steps moved to the end (padding first)."""
    valid = ~padded_steps(values[:1], 0.0)[0]
    moved = values.copy()
    moved[0] = np.concatenate([values[0, ~valid], values[0, valid]])
    return moved


def without_gap_check(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each top-level ``If`` replaced by the nodes of its else branch (the
    right-padding path), and the nodes and constants that only fed the conditions removed."""
    graph = model.graph
    nodes = []
    for node in graph.node:
        if node.op_type != "If":
            nodes.append(node)
            continue
        branch = next(a.g for a in node.attribute if a.name == "else_branch")
        nodes.extend(branch.node)
        nodes.append(onnx.helper.make_node("Identity", [branch.output[0].name], [node.output[0]]))
    needed = {output.name for output in graph.output}
    kept = []
    for node in reversed(nodes):  # a topological order, read backwards: keep what is needed
        if needed & set(node.output):
            kept.append(node)
            needed |= set(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    unused = [tensor for tensor in graph.initializer if tensor.name not in needed]
    for tensor in unused:  # onnxruntime would warn about each at load
        graph.initializer.remove(tensor)
    onnx.checker.check_model(model)
    return model


def benchmark_cell(cell: str, units: int, threads: int, repeats: int, folder: Path) -> list[str]:
    import keras

    from benchmarks.fusion import layer_graph, sequences
    from export.onnx import write_onnx

    print(f"exporting and timing {cell}, {units} units", flush=True)  # progress
    graph = layer_graph(cell, units, masked=True)
    path = folder / f"{graph.name}.onnx"
    write_onnx(graph, path, fuse={cell: None})
    unchecked = folder / f"{graph.name}_unchecked.onnx"
    onnx.save(without_gap_check(onnx.load(str(path))), str(unchecked))
    sessions = {
        "checked": open_session(path, threads),
        "unchecked": open_session(unchecked, threads),
    }
    rng = np.random.default_rng(0)
    rows = []
    for label, (batch, steps) in SHAPES.items():
        right = sequences(batch, steps, True, rng)
        right[0, -1] = 0.0  # at least one padded step, so that the left-padded row differs
        runs = {
            "unchecked": (sessions["unchecked"], right),
            "right": (sessions["checked"], right),
            "left": (sessions["checked"], left_padded(right)),
        }
        for name, (onnx_session, values) in runs.items():
            expected = keras.ops.convert_to_numpy(graph.model({"sequence": values})["outputs"])
            (actual,) = onnx_session.run(None, {"sequence": values})
            if not np.allclose(actual, expected, atol=1e-4):
                raise AssertionError(f"{cell}: ONNX ({name}) differs from Keras")
        ms = {
            name: median_ms(lambda s=s, v=values: s.run(None, {"sequence": v}), repeats)
            for name, (s, values) in runs.items()
        }
        check_us = 1000 * (ms["right"] - ms["unchecked"])
        rows.append(
            f"| {cell} | {units} | {label} | {ms['unchecked']:.4f} | {ms['right']:.4f} "
            f"| {ms['right'] / ms['unchecked']:.2f}x ({check_us:+.1f} µs) | {ms['left']:.4f} "
            f"| {ms['left'] / ms['right']:.2f}x |"
        )
    return rows


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(
        prog="python -m benchmarks.masks", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--units", type=cli.positive_int, default=64, help="(default: 64)")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells")
    parser.add_argument(
        "--threads", type=cli.positive_int, default=1, help="onnxruntime threads (default: 1)"
    )
    parser.add_argument(
        "--repeats", type=cli.positive_int, default=300, help="timed calls (default: 300)"
    )
    quiet.add_verbose_flag(parser)
    try:
        args = parser.parse_args(argv)
        cells = parse_cells(args.cells)
        quiet.start_tensorflow(args.verbose)
        with scratch_folder() as folder:
            rows = [
                row
                for cell in cells
                for row in benchmark_cell(cell, args.units, args.threads, args.repeats, folder)
            ]
    except UserError as error:
        return cli.report(error)
    print(
        f"\nonnxruntime median latency in ms, {args.threads} thread(s), {args.repeats} calls "
        "after 3 warm-up; one masked layer, fused; features 8.\n"
    )
    print(HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    with cli.exit_on_interrupt(lambda: "no table was printed"):
        sys.exit(main())
