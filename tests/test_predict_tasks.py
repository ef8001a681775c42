"""The serving contract (serving/predict_tasks/__init__.py): every task has a ``TaskRuntime``,
and ``serving.predict`` refuses a module that lacks part of it, naming what it lacks."""

import sys

import pytest

import serving.predict_tasks
from keras_rnn.tasks import task_configs
from serving.predict import main as predict_main
from serving.predict_tasks import TaskRuntime, task_runtimes


def test_every_task_has_a_runtime_with_the_whole_contract():
    runtimes = task_runtimes()
    assert sorted(runtimes) == sorted(task_configs())
    assert all(isinstance(runtime, TaskRuntime) for runtime in runtimes.values())


def test_a_runtime_lacking_part_of_the_contract_is_named(tmp_path, monkeypatch):
    """A module without ``TAKES_TEXTS`` and ``remote_predict``, found beside the others."""
    (tmp_path / "chess.py").write_text(
        'TITLE = "chess runs"\n\n\n'
        "def add_arguments(group):\n    group.add_argument('--move')\n\n\n"
        "def predict(graph, args):\n    return {}, ''\n"
    )
    found_in = [*serving.predict_tasks.__path__, str(tmp_path)]
    monkeypatch.setattr(serving.predict_tasks, "__path__", found_in)
    try:
        with pytest.raises(
            TypeError,
            match=r"^task runtime serving\.predict_tasks\.chess lacks TAKES_TEXTS, "
            r"remote_predict$",
        ):
            predict_main([str(tmp_path), "--move", "e4"])
    finally:
        sys.modules.pop("serving.predict_tasks.chess", None)
