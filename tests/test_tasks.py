"""The task contract (keras_rnn/tasks/__init__.py): every task provides all of it."""

import json
import sys
import types

import pytest

from keras_rnn.tasks import Task, load_task, task_configs


@pytest.mark.parametrize("name", task_configs())
def test_every_task_provides_the_whole_contract(name):
    task = load_task(name)
    assert isinstance(task, Task)
    assert task.Config is task_configs()[name]


def test_a_module_lacking_part_of_the_contract_is_named(monkeypatch):
    partial = types.ModuleType("keras_rnn.tasks.sine.task")
    partial.Config = task_configs()["sine"]
    partial.build_model = lambda config, data: None
    monkeypatch.setitem(sys.modules, "keras_rnn.tasks.sine.task", partial)
    with pytest.raises(TypeError, match="lacks make_datasets, compile_args, log_callbacks"):
        load_task("sine")


@pytest.mark.slow
def test_the_trainer_writes_the_vocabulary_before_training(tmp_path, monkeypatch):
    """A task's assets (its vocabulary) are in the run before the first epoch, written by the
    trainer: a run interrupted in training already has the vocabulary it was trained with."""
    import keras

    from keras_rnn import train

    conll = tmp_path / "data.conll"
    conll.write_text("".join(f"the DET\n{word} NOUN\nruns VERB\n\n" for word in ["dog"] * 40))
    run_dir = tmp_path / "run"
    argv = ["--task", "tagging", "--conll", conll, "--run-dir", run_dir, "--units", "4"]
    argv += ["--epochs", "1", "--patience", "0", "--batch-size", "8"]
    seen = []
    monkeypatch.setattr(
        keras.callbacks.CSVLogger,
        "on_epoch_begin",
        lambda self, epoch, logs=None: seen.append((run_dir / "vocab" / "vocab.json").is_file()),
    )
    assert train.main([str(a) for a in argv]) == 0
    assert seen == [True]
    vocab = json.loads((run_dir / "vocab" / "vocab.json").read_text())
    assert set(vocab["tags"]) == {"DET", "NOUN", "VERB"}
