"""The task contract (keras_rnn/tasks/__init__.py): every task provides all of it."""

import sys
import types

import pytest

from keras_rnn.config import CONFIGS
from keras_rnn.tasks import Task, load_task


@pytest.mark.parametrize("name", CONFIGS)
def test_every_task_provides_the_whole_contract(name):
    task = load_task(name)
    assert isinstance(task, Task)
    assert task.Config is CONFIGS[name]


def test_a_module_lacking_part_of_the_contract_is_named(monkeypatch):
    partial = types.ModuleType("keras_rnn.tasks.sine")
    partial.Config = CONFIGS["sine"]
    partial.build_model = lambda config, data: None
    monkeypatch.setitem(sys.modules, "keras_rnn.tasks.sine", partial)
    with pytest.raises(TypeError, match="lacks make_datasets, compile_args, log_callbacks"):
        load_task("sine")
