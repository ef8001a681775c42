"""python -m export.verify RUN_DIR: re-check an existing export against the run's model.

Loads model.keras, rebuilds the task's graphs and checks each exported SavedModel and ONNX
file against Keras again, then (when parity holds) the Triton model folders against
manifest.json and the ONNX files, without writing anything. Exit 0 when parity holds, 1 when
it does not, 2 for a user mistake (no export, unfinished run, a damaged file, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path

from export import triton
from export.exporting import FORMAT_NAMES, format_report
from keras_rnn import quiet
from keras_rnn.errors import UserError
from keras_rnn.runs import finished_run, load_trained_model, read_json
from serving import cli


def verify(run_dir: Path, verbose: bool = False) -> dict:
    """The parity report of the export in ``run_dir``, computed afresh; ``verbose`` lets
    TensorFlow's start-up lines through."""
    run, config = finished_run(run_dir)
    export = run.path / "export"
    manifest = read_json(export / "manifest.json")
    quiet.start_tensorflow(verbose)
    from export import parity
    from keras_rnn.tasks import load_task, no_decoding_check

    task, model = load_task(config.task), load_trained_model(run)
    graphs = {g.name: g for g in task.export_graphs(model, config, run)}
    entries = []
    for entry in manifest["graphs"]:
        if entry["name"] not in graphs:
            raise UserError(
                f"{export}/manifest.json names graph {entry['name']!r}, which the run lacks"
            )
        graph = graphs[entry["name"]]
        again = f"re-export with python -m export {run_dir} --force"
        for form in graph.formats:
            if form not in entry:
                raise UserError(
                    f"{export}/manifest.json gives {graph.name!r} no {form} file: {again}"
                )
        paths = {form: export / entry[form] for form in graph.formats}
        for path in paths.values():
            if not path.exists():
                raise UserError(f"{path} is missing: {again}")
        if "savedmodel" in paths:
            check_savedmodel_file(paths["savedmodel"])
        formats = " and ".join(FORMAT_NAMES[form] for form in graph.formats)
        print(f"checking {graph.name}: {formats} against Keras", flush=True)
        # a damaged file, or another graph's, is a UserError when parity opens it
        savedmodel, onnx_path = paths.get("savedmodel"), paths.get("onnx")
        atol = parity.ATOL[config.cell]
        entries.append(parity.check_graph(graph, savedmodel, onnx_path, atol, entry=entry))
    report = {"ok": all(e["ok"] for e in entries), "graphs": entries}
    if task.check_decoding is not no_decoding_check:
        print("checking decoding through the exported graphs against Keras", flush=True)
    decode = task.check_decoding(model, config, export)
    if decode is not None:
        report["decode"] = decode
        report["ok"] = report["ok"] and decode["ok"]
    if report["ok"]:  # onnx/ holds good files: triton/ must hold copies of them
        triton.check_repository(export, manifest["graphs"])
    return report


def check_savedmodel_file(savedmodel_dir: Path) -> None:
    """Raise ``UserError`` unless ``savedmodel_dir``'s saved_model.pb parses as a SavedModel
    with a MetaGraph, which is what ``tf.saved_model.load`` reads first (it answers a damaged
    file with an OSError or ValueError traceback)."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf.saved_model_pb2 import SavedModel

    path = savedmodel_dir / "saved_model.pb"
    damaged = f"{path} cannot be loaded (corrupt or truncated?)"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(
            f"{path} is missing: re-export with python -m export RUN_DIR --force"
        ) from None
    if not data:
        raise UserError(f"{damaged}: it is empty (0 bytes)")
    try:
        saved = SavedModel.FromString(data)
    except DecodeError:
        raise UserError(f"{damaged}: it is not a SavedModel (protobuf parsing failed)") from None
    if not saved.meta_graphs:
        raise UserError(f"{damaged}: it holds no MetaGraph")


@cli.pipe_safe
def main(argv: list[str] | None = None) -> int:
    parser = cli.ArgumentParser(prog="python -m export.verify", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="an exported run directory")
    quiet.add_verbose_flag(parser)
    try:
        args = parser.parse_args(argv)
        with cli.exit_on_interrupt(lambda: "nothing was changed"):
            report = verify(args.run_dir, args.verbose)
    except UserError as error:
        return cli.report(error)
    print(format_report(report))
    if not report["ok"]:
        print("error: parity failed", file=sys.stderr)
        return 1
    print("parity holds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
