"""The checks every task passes (as keras-hub's ``run_backbone_test``): a tiny run trained and
exported, its files, fused ONNX graphs at parity, ``serving.predict`` with TensorFlow blocked
answering as Keras does, and the one-line refusals.

A task's test file declares ``class TestNameBattery(TaskBattery): case = TaskCase(...)``; its
own tests reach the same runs with ``case.trained(tiny_runs)`` and ``case.exported(tiny_runs)``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any, ClassVar

import onnx
import pytest

from tests.conftest import REPO, DataFiles, TinyRuns, foreign_classes, run_without_tensorflow

RECURRENT_OPS = frozenset({"LSTM", "GRU", "RNN"})  # the fused ONNX nodes
UNFUSED_OPS = frozenset({"Loop", "Scan"})  # what tf2onnx leaves of a loop it did not fuse

# python -c SCRIPT MODEL_KERAS MODULE...: plain Keras loads the file before and after importing
# the modules (Keras cannot find an unregistered class: TypeError)
LOAD_BEFORE_AND_AFTER_IMPORTS = """
import importlib, sys
import keras
try:
    keras.models.load_model(sys.argv[1])
    print("without imports: loaded")
except TypeError:
    print("without imports: refused")
for module in sys.argv[2:]:
    importlib.import_module(module)
keras.models.load_model(sys.argv[1])
print("with: loaded")
"""


@dataclass(frozen=True)
class Refusal:
    """Flags a command refuses, and fragments of its one ``error:`` line."""

    flags: tuple[str, ...]
    fragments: tuple[str, ...]


def refusal(flags: list[str], *fragments: str) -> Refusal:
    """``Refusal(flags, fragments)``, written as a call."""
    return Refusal(tuple(flags), fragments)


@dataclass(frozen=True)
class TaskCase:
    """One task's tiny run and what the battery expects of it."""

    task: str
    training: tuple[str, ...]  # train flags after --task; "{data}" is the data files' folder
    graphs: tuple[str, ...]  # the exported graphs, in manifest order
    metrics: frozenset[str]  # the keys of metrics.json
    query: tuple[str, ...]  # serving.predict flags
    answer: Callable[[Path], dict[str, Any]]  # Keras's answer to query, as predict --json prints
    data: DataFiles = ()  # data files the training flags name
    plots: tuple[str, ...] = ()  # the task's plots, besides loss.png
    assets: tuple[str, ...] = ()  # run files the export copies (vocabularies)
    bad_training: tuple[Refusal, ...] = ()  # train refuses these after --task
    bad_predict: tuple[Refusal, ...] = ()  # serving.predict refuses these on the exported run
    # the modules plain keras.models.load_model needs imported first to read model.keras (those
    # that register the file's classes of ours; docs/api.md names them)
    model_imports: tuple[str, ...] = ()
    atol: float = 1e-5  # a float of the served answer may differ from Keras's by this much

    def trained(self, runs: TinyRuns) -> Path:
        """The finished run (not exported)."""
        return runs.trained(self.task, self.training, self.data)

    def exported(self, runs: TinyRuns) -> Path:
        """A copy of the run, exported."""
        return runs.exported(self.task, self.training, self.data)

    def log(self, runs: TinyRuns) -> str:
        """What training printed on stdout."""
        return runs.log(self.task, self.training, self.data)


class TaskBattery:
    """The shared checks; a subclass named ``Test...`` sets ``case``."""

    case: ClassVar[TaskCase]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        for name, refusals in (
            ("bad_training", self.case.bad_training),
            ("bad_predict", self.case.bad_predict),
        ):
            if name not in metafunc.fixturenames:
                continue
            if refusals:
                ids = [" ".join(r.flags) or "no flags" for r in refusals]
                metafunc.parametrize(name, refusals, ids=ids)
            else:
                skip = pytest.mark.skip(reason=f"this {self.case.task} case lists no {name} flags")
                metafunc.parametrize(name, [pytest.param(None, marks=skip)], ids=["none"])

    @pytest.fixture(scope="class")
    def trained(self, tiny_runs: TinyRuns) -> Path:
        """The case's finished run, not exported."""
        return self.case.trained(tiny_runs)

    @pytest.fixture(scope="class")
    def exported(self, tiny_runs: TinyRuns) -> Path:
        """An exported copy of the case's run."""
        return self.case.exported(tiny_runs)

    def test_run_directory_contract(self, trained: Path) -> None:
        """The run's files (docs/design.md section 3), its task, and finite metrics."""
        from keras_rnn.runs import RUN_ENTRIES

        saved = read_json(trained / "config.json")
        assert set(saved) == {"config", "runtime", "data", "environment"}
        assert saved["config"]["task"] == self.case.task
        assert {p.name for p in trained.iterdir()} <= RUN_ENTRIES
        assert (trained / "model.keras").is_file()
        with (trained / "history.csv").open() as f:
            rows = list(csv.DictReader(f))
        assert rows and {"epoch", "loss", "val_loss"} <= set(rows[0])
        assert [row["epoch"] for row in rows] == [str(e) for e in range(len(rows))]
        assert set(read_json(trained / "metrics.json")) == self.case.metrics
        for plot in ("loss", *self.case.plots):
            assert (trained / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"
        assert sorted(p.name for p in (trained / "plots").iterdir()) == sorted(
            f"{plot}.png" for plot in ("loss", *self.case.plots)
        )
        for weights in ("initial", "best"):
            assert (trained / "checkpoints" / f"{weights}.weights.h5").is_file()
        assert not (trained / "checkpoints" / "backup").exists()
        assert not [p for p in trained.rglob(".*") if p.name.startswith((".tmp-", ".export"))]
        for asset in self.case.assets:
            assert (trained / asset).is_file()

    def test_plain_keras_loads_the_model(self, trained: Path) -> None:
        """Plain ``keras.models.load_model`` reads model.keras once ``case.model_imports`` are
        imported: the file names no class outside Keras but theirs. With imports to make, the
        load fails without them and works with them, in a fresh process."""
        classes = foreign_classes(trained / "model.keras")
        assert sorted({name.rsplit(".", 1)[0] for name in classes}) == sorted(
            self.case.model_imports
        ), classes
        if not self.case.model_imports:
            return
        script = [sys.executable, "-c", LOAD_BEFORE_AND_AFTER_IMPORTS, trained / "model.keras"]
        result = subprocess.run(
            [*script, *self.case.model_imports],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-4000:]
        assert result.stdout.splitlines()[-2:] == ["without imports: refused", "with: loaded"]

    def test_export_is_fused_with_parity(self, exported: Path) -> None:
        """Every graph at parity; each ONNX graph's recurrent layers fused nodes with no Loop or
        Scan left at any depth, and the report's op counts those of the file."""
        export = exported / "export"
        manifest, report = read_json(export / "manifest.json"), read_json(export / "parity.json")
        assert manifest["task"] == self.case.task
        assert [g["name"] for g in manifest["graphs"]] == list(self.case.graphs)
        assert all(g["runtime"]["task"] == self.case.task for g in manifest["graphs"])
        assert report["ok"] is True
        assert [g["name"] for g in report["graphs"]] == list(self.case.graphs)
        for entry in report["graphs"]:
            assert entry["ok"] is True, entry
            if "onnx" not in entry["formats"]:  # a SavedModel-only graph: nothing to fuse
                assert entry["fused"] is None and entry["onnx_op_counts"] is None, entry
                continue
            assert entry["fused"] is True, entry
            assert not [line for line in entry["recurrent_layers"] if "Loop" in line], entry
            model = onnx.load(export / "onnx" / f"{entry['name']}.onnx")
            ops = list(op_types(model.graph))
            assert not UNFUSED_OPS & set(ops) and RECURRENT_OPS & set(ops), (entry["name"], ops)
            top = [node.op_type for node in model.graph.node]
            assert entry["onnx_op_counts"] == {op: top.count(op) for op in set(top)}
        for asset in self.case.assets:
            assert (export / asset).read_bytes() == (exported / asset).read_bytes()

    def test_verify_passes(self, exported: Path) -> None:
        """``python -m export.verify`` finds parity again."""
        from export.verify import main as verify_main

        assert verify_main([str(exported)]) == 0

    def test_served_answer_is_keras_answer_without_tensorflow(self, exported: Path) -> None:
        """``serving.predict RUN QUERY --json``, with TensorFlow and keras_rnn unimportable,
        prints what Keras answers."""
        result = run_without_tensorflow("serving.predict", exported, *self.case.query, "--json")
        assert result.returncode == 0, result.stderr
        assert_same_answer(json.loads(result.stdout), self.case.answer(exported), self.case.atol)

    def test_bad_training_flag_is_one_line(
        self, bad_training: Refusal, tmp_path: Path, cli_error
    ) -> None:
        from keras_rnn import train

        run_dir = tmp_path / "run"
        argv = ["--task", self.case.task, *bad_training.flags, "--run-dir", run_dir]
        cli_error(train.main, argv, *bad_training.fragments)
        assert not run_dir.exists()

    def test_bad_predict_flag_is_one_line(
        self, bad_predict: Refusal, exported: Path, cli_error
    ) -> None:
        from serving.predict import main as predict_main

        cli_error(predict_main, [exported, *bad_predict.flags], *bad_predict.fragments)

    def test_predict_refuses_other_tasks_flags(self, exported: Path, cli_error) -> None:
        """Each flag of another task's runtime, and all of them at once, named in one line."""
        from serving.predict import main as predict_main

        foreign = [flag for task, flag in runtime_flags() if task != self.case.task]
        assert foreign
        refused = f": not an option for {self.case.task} runs"
        for flag in foreign:
            argv = [exported, *self.case.query, *flag]
            cli_error(predict_main, argv, f"error: {flag[0]}{refused}")
        every = [part for flag in foreign for part in flag]
        names = ", ".join(flag[0] for flag in foreign)
        cli_error(predict_main, [exported, *self.case.query, *every], f"error: {names}{refused}")

    def test_predict_needs_the_export(self, trained: Path, cli_error) -> None:
        from serving.predict import main as predict_main

        argv = [trained, *self.case.query]
        cli_error(predict_main, argv, "manifest.json is missing", "python -m export")

    def test_predict_names_the_graph_it_drives(self, exported: Path, cli_error) -> None:
        """Of several graphs, another than the one the runtime drives is refused by name."""
        from serving.predict import main as predict_main

        entries = read_json(exported / "export" / "manifest.json")["graphs"]
        (driven,) = [e["name"] for e in entries if e["runtime"].get("default")] or [None]
        if driven is None:
            pytest.skip(f"the {self.case.task} export has one graph: predict drives it")
        for name in self.case.graphs:
            if name != driven:
                argv = [exported, *self.case.query, "--graph", name]
                cli_error(predict_main, argv, f"--graph {name}: the", f"drives graph {driven},")

    def test_an_unserved_task_is_one_line(self, exported: Path, tmp_path: Path, cli_error) -> None:
        from serving.predict import main as predict_main

        copy = tmp_path / "run"
        shutil.copytree(exported / "export", copy / "export")
        manifest = copy / "export" / "manifest.json"
        data = read_json(manifest)
        for graph in data["graphs"]:
            graph["runtime"]["task"] = "chess"
        manifest.write_text(json.dumps(data))
        cli_error(predict_main, [copy, *self.case.query], "task 'chess'", "does not serve")


def read_json(path: Path) -> Any:
    """A JSON file that holds no NaN or infinity."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{path} holds {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def op_types(graph: onnx.GraphProto) -> Iterator[str]:
    """The op type of every node of ``graph`` and of the graphs inside its nodes (If, Loop)."""
    for node in graph.node:
        yield node.op_type
        for attribute in node.attribute:
            for inner in [attribute.g] if attribute.HasField("g") else attribute.graphs:
                yield from op_types(inner)


def runtime_flags() -> list[tuple[str, tuple[str, ...]]]:
    """(task, one of its serving runtime's flags with a value it parses), for every task."""
    from serving.predict_tasks import task_runtimes

    flags = []
    for task, runtime in task_runtimes().items():
        recorder = _Recorder(argparse.ArgumentParser().add_argument_group(runtime.TITLE))
        runtime.add_arguments(recorder)
        for action in recorder.actions:
            value = () if action.nargs == 0 else (str((action.choices or [1])[0]),)
            flags.append((task, (action.option_strings[0], *value)))
    return flags


class _Recorder:
    """An argument group that keeps the action of each flag added to it."""

    def __init__(self, group: argparse._ArgumentGroup) -> None:
        self.group, self.actions = group, []

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        self.actions.append(self.group.add_argument(*args, **kwargs))
        return self.actions[-1]


def assert_same_answer(got: Any, expected: Any, atol: float, where: str = "answer") -> None:
    """``got`` equals ``expected``: the same keys, lengths and values, floats within ``atol``."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and got.keys() == expected.keys(), (where, got, expected)
        for key in expected:
            assert_same_answer(got[key], expected[key], atol, f"{where}[{key!r}]")
    elif isinstance(expected, list | tuple):
        assert isinstance(got, list) and len(got) == len(expected), (where, got, expected)
        for index, (a, b) in enumerate(zip(got, expected, strict=True)):
            assert_same_answer(a, b, atol, f"{where}[{index}]")
    elif isinstance(expected, float) or isinstance(got, float):
        assert isinstance(got, Real) and isinstance(expected, Real), (where, got, expected)
        assert math.isfinite(got) and abs(got - expected) <= atol, (where, got, expected)
    else:
        assert type(got) is type(expected) and got == expected, (where, got, expected)
