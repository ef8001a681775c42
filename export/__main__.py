"""python -m export RUN_DIR [--force]: SavedModel + ONNX + manifest.json + parity.json.

Everything is built in a temporary folder inside the run and renamed to ``RUN_DIR/export``
only when parity holds; on a parity failure nothing is left behind and the exit status is 1.
User mistakes print one line and exit with status 2; Ctrl-C prints one line and exits with
status 130. TensorFlow's start-up lines stay off the terminal unless --verbose asks for them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from keras_rnn import quiet
from keras_rnn.config import TrainConfig
from keras_rnn.errors import UserError
from keras_rnn.graphs import ExportGraph
from keras_rnn.runs import (
    RunDir,
    check_export_dir,
    finished_run,
    load_trained_model,
    remove_stale_temporaries,
    write_json,
)
from serving import cli


def export_run(run: RunDir, config: TrainConfig, force: bool = False) -> dict[str, Any]:
    """Build the export in a temporary folder; move it into place if parity holds, replacing
    an export of ours only with ``force`` (``check_export_dir``). Returns the parity report."""
    from export import onnx, parity
    from keras_rnn.tasks import load_task

    target = run.path / "export"
    remove_stale_temporaries(run)  # what a killed export or training left behind
    check_export_dir(target, force)
    graphs = load_task(config.task).export_graphs(load_trained_model(run), config)
    building = run.path / f".export.tmp-{os.getpid()}"
    retired = run.path / f".export.old-{os.getpid()}"

    def tidy() -> None:
        """No temporary folder stays, and a replaced export comes back if the new one did
        not take its place (also on Ctrl-C)."""
        if retired.exists() and not target.exists():
            retired.rename(target)
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)

    with cli.on_interrupt(tidy):
        try:
            entries, manifest_graphs = [], []
            for graph in graphs:
                print(f"exporting {graph.name}: SavedModel, ONNX, parity check", flush=True)
                entry, manifest_entry = export_graph(graph, building, parity.ATOL[config.cell])
                entries.append(entry)
                manifest_graphs.append(manifest_entry)
            report = {"ok": all(entry["ok"] for entry in entries), "graphs": entries}
            if not report["ok"]:
                return report
            if (run.path / "vocab").is_dir():  # tokenizer files the runtimes read
                # copyfile, not copytree's default copy2: a copy gets the mode this umask gives
                shutil.copytree(
                    run.path / "vocab", building / "vocab", copy_function=shutil.copyfile
                )
            write_json(
                building / "manifest.json",
                {"task": config.task, "opset": onnx.OPSET, "graphs": manifest_graphs},
            )
            write_json(building / "parity.json", report)
            if target.exists():
                target.rename(retired)
            building.rename(target)
            return report
        finally:
            tidy()


def export_graph(graph: ExportGraph, root: Path, atol: float) -> tuple[dict, dict]:
    """Write one graph's SavedModel and ONNX under ``root`` and check parity; return its
    parity.json entry and its manifest.json entry. Shared by the CLI and the test matrix."""
    from export import onnx, parity, savedmodel

    savedmodel_dir = root / "savedmodel" / graph.name / "1"
    onnx_path = root / "onnx" / f"{graph.name}.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    savedmodel.write_savedmodel(graph, savedmodel_dir)
    layers = onnx.write_onnx(graph, onnx_path)
    entry = parity.check_graph(graph, savedmodel_dir, onnx_path, atol)
    entry["recurrent_layers"] = layers
    return entry, _manifest_entry(graph, savedmodel_dir, onnx_path, root)


def _manifest_entry(
    graph: ExportGraph, savedmodel_dir: Path, onnx_path: Path, root: Path
) -> dict[str, Any]:
    outputs = graph.model.output
    return {
        "name": graph.name,
        "savedmodel": str(savedmodel_dir.relative_to(root)),
        "onnx": str(onnx_path.relative_to(root)),
        "inputs": [
            {"name": name, "dtype": dtype, "shape": list(shape)}
            for name, (shape, dtype) in graph.inputs.items()
        ],
        "outputs": [
            {"name": name, "dtype": str(outputs[name].dtype), "shape": list(outputs[name].shape)}
            for name in graph.outputs
        ],
        "runtime": graph.runtime,
        "masked_input": (
            {"name": graph.masked_input, "pad_value": graph.pad_value}
            if graph.masked_input
            else None
        ),
    }


def format_report(report: dict[str, Any]) -> str:
    from export.onnx import recurrent_ops

    lines = [
        "| graph | max diff SavedModel | max diff ONNX | atol | ONNX recurrent ops | ok |",
        "|---|---:|---:|---:|---|---|",
    ]
    for entry in report["graphs"]:
        ops = recurrent_ops(entry["onnx_op_counts"])
        diffs = f"{entry['max_abs_diff_savedmodel']:.2e} | {entry['max_abs_diff_onnx']:.2e}"
        ok = "yes" if entry["ok"] else "NO"
        lines.append(f"| {entry['name']} | {diffs} | {entry['atol']:.0e} | {ops} | {ok} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m export", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a finished run directory")
    parser.add_argument("--force", action="store_true", help="replace an existing export")
    quiet.add_verbose_flag(parser)
    try:
        args = parser.parse_args(argv)
        run, config = finished_run(args.run_dir)
        check_export_dir(run.path / "export", args.force)  # --force replaces only our export
        with cli.exit_on_interrupt(lambda: "no new export was written"):
            quiet.start_tensorflow(args.verbose)
            report = export_run(run, config, args.force)
    except UserError as error:
        return cli.report(error)
    print(format_report(report))
    if not report["ok"]:
        print(json.dumps(report, indent=2), file=sys.stderr)
        print("error: parity failed: nothing was written", file=sys.stderr)
        return 1
    print(f"\nexport: {run.path / 'export'} (manifest.json, parity.json, savedmodel/, onnx/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
