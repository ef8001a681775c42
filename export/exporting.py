"""The export library behind ``python -m export``: write each graph in the formats it lists,
check parity, write ``manifest.json`` and ``parity.json``, and format the report.

Everything is built in a temporary folder inside the run and renamed to ``RUN_DIR/export``
only when parity holds; on a parity failure nothing is left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from keras_rnn.config import TrainConfig
from keras_rnn.graphs import ExportGraph
from keras_rnn.runs import (
    RunDir,
    check_export_dir,
    load_trained_model,
    remove_stale_temporaries,
    write_json,
)
from serving import cli
from serving.progress import Progress

FORMAT_NAMES = {"savedmodel": "SavedModel", "onnx": "ONNX"}


def export_run(run: RunDir, config: TrainConfig, force: bool = False) -> dict[str, Any]:
    """Build the export in a temporary folder; move it into place if parity holds, replacing
    an export of ours only with ``force`` (``check_export_dir``). Returns the parity report."""
    from export import onnx, parity
    from keras_rnn.tasks import load_task, no_decoding_check

    target = run.path / "export"
    remove_stale_temporaries(run)  # what a killed export or training left behind
    check_export_dir(target, force)
    task, model = load_task(config.task), load_trained_model(run)
    graphs = task.export_graphs(model, config, run)
    building = run.path / f".export.tmp-{os.getpid()}"
    retired = run.path / f".export.old-{os.getpid()}"

    def build(folder: Path) -> dict[str, Any]:
        report, manifest_graphs = write_graphs(graphs, folder, parity.ATOL[config.cell])
        if not report["ok"]:
            return report
        if (run.path / "vocab").is_dir():  # tokenizer files the runtimes read
            # copyfile, not copytree's default copy2: a copy gets the mode this umask gives
            shutil.copytree(run.path / "vocab", folder / "vocab", copy_function=shutil.copyfile)
        write_json(
            folder / "manifest.json",
            {"task": config.task, "opset": onnx.OPSET, "graphs": manifest_graphs},
        )
        if task.check_decoding is not no_decoding_check:
            print("checking decoding through the exported graphs against Keras", flush=True)
        decode = task.check_decoding(model, config, folder)
        if decode is not None:
            report["decode"] = decode
            report["ok"] = decode["ok"]
            if not report["ok"]:
                return report
        write_json(folder / "parity.json", report)
        return report

    return build_in_place(target, building, retired, build)


def build_in_place(
    target: Path, building: Path, retired: Path, build: Callable[[Path], dict[str, Any]]
) -> dict[str, Any]:
    """Call ``build(building)``, which writes an export into the new folder ``building`` and
    returns its report; when the report is ok, move it to ``target``, an existing ``target``
    going by way of ``retired``. No temporary folder stays, and a replaced export comes back
    if the new one did not take its place (also on Ctrl-C). Returns the report."""

    def tidy() -> None:
        if retired.exists() and not target.exists():
            retired.rename(target)
        shutil.rmtree(building, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)

    with cli.on_interrupt(tidy):
        try:
            report = build(building)
            if report["ok"]:
                if target.exists():
                    target.rename(retired)
                building.rename(target)
            return report
        finally:
            tidy()


def write_graphs(
    graphs: list[ExportGraph], root: Path, default_atol: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``export_graph`` for each graph, with a progress line; the parity report (``ok`` when
    every graph is) and the manifest.json entries."""
    entries, manifest_graphs = [], []
    for graph in graphs:
        formats = ", ".join(FORMAT_NAMES[name] for name in graph.formats)
        print(f"exporting {graph.name}: {formats}, parity check", flush=True)
        entry, manifest_entry = export_graph(graph, root, default_atol)
        entries.append(entry)
        manifest_graphs.append(manifest_entry)
    return {"ok": all(entry["ok"] for entry in entries), "graphs": entries}, manifest_graphs


def export_graph(graph: ExportGraph, root: Path, default_atol: float) -> tuple[dict, dict]:
    """Write one graph in each of ``graph.formats`` under ``root`` (a SavedModel with TF
    Serving's warm-up requests; an ONNX file with its Triton model folder) and check parity
    against ``graph.atol``, or ``default_atol`` when it sets none; return its parity.json entry
    and its manifest.json entry. Shared by the CLI and the tests."""
    from export import onnx, parity, savedmodel, triton, warmup

    savedmodel_dir = onnx_path = None
    layers: list[str] = []
    with Progress(f"exporting {graph.name}", len(graph.formats) + 1) as progress:
        if "savedmodel" in graph.formats:
            progress.advance(0, "SavedModel")
            savedmodel_dir = root / "savedmodel" / graph.name / "1"
            savedmodel.write_savedmodel(graph, savedmodel_dir)
            warmup.write_warmup(graph, savedmodel_dir)  # TF Serving runs these requests at load
            progress.advance()
        if "onnx" in graph.formats:
            progress.advance(0, "ONNX conversion")
            onnx_path = root / "onnx" / f"{graph.name}.onnx"
            onnx_path.parent.mkdir(parents=True, exist_ok=True)
            layers = onnx.write_onnx(graph, onnx_path)
            progress.advance()
        progress.advance(0, "parity check")
        entry = parity.check_graph(graph, savedmodel_dir, onnx_path, default_atol)
    entry["recurrent_layers"] = layers
    manifest_entry = _manifest_entry(graph, savedmodel_dir, onnx_path, root)
    if onnx_path is not None:
        triton.write_model(root, manifest_entry)  # triton/NAME/: config.pbtxt, 1/model.onnx
    return entry, manifest_entry


def _manifest_entry(
    graph: ExportGraph, savedmodel_dir: Path | None, onnx_path: Path | None, root: Path
) -> dict[str, Any]:
    """The graph's manifest.json entry: a path for each format it was written in, none other;
    an integer input that feeds an Embedding has its ids' ``range`` [0, input_dim)."""
    from export.consumers import embedding_sizes

    outputs = graph.model.output
    sizes = embedding_sizes(graph.model)
    paths = {
        name: str(path.relative_to(root))
        for name, path in (("savedmodel", savedmodel_dir), ("onnx", onnx_path))
        if path is not None
    }
    return {
        "name": graph.name,
        "formats": list(graph.formats),
        **paths,
        "inputs": [
            {"name": name, "dtype": dtype, "shape": list(shape)}
            | ({"range": [0, sizes[name]]} if name in sizes else {})
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
    """The parity report as a Markdown table; a format a graph does not go to shows ``-``."""
    from export.onnx import recurrent_ops

    lines = [
        "| graph | max diff SavedModel | max diff ONNX | atol | ONNX recurrent ops | ok |",
        "|---|---:|---:|---:|---|---|",
    ]
    for entry in report["graphs"]:
        counts = entry["onnx_op_counts"]
        ops = "-" if counts is None else recurrent_ops(counts)
        diffs = " | ".join(
            "-" if entry[key] is None else f"{entry[key]:.2e}"
            for key in ("max_abs_diff_savedmodel", "max_abs_diff_onnx")
        )
        ok = "yes" if entry["ok"] else "NO"
        lines.append(f"| {entry['name']} | {diffs} | {entry['atol']:.0e} | {ops} | {ok} |")
    if "decode" in report:
        ok = "yes" if report["decode"]["ok"] else "NO"
        lines += ["", f"decoding through the exported graphs: {report['decode']['summary']} ({ok})"]
    return "\n".join(lines)


def print_outcome(report: dict[str, Any], target: Path) -> int:
    """Print the report; then the folder ``target`` and what it holds (exit status 0), or, when
    parity failed, the JSON report and one ``error:`` line on stderr (exit status 1)."""
    print(format_report(report))
    if not report["ok"]:
        print(json.dumps(report, indent=2), file=sys.stderr)
        print("error: parity failed: nothing was written", file=sys.stderr)
        return 1
    written = sorted(entry.name + "/" * entry.is_dir() for entry in target.iterdir())
    print(f"\nexport: {target} ({', '.join(written)})")
    return 0
