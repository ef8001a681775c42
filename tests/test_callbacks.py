"""Resume state: history trimming, best weights and early stopping pick up where they were."""

import csv
import math

import keras
import numpy as np
import pytest

from keras_rnn.callbacks import (
    BestWeights,
    ExactBackupAndRestore,
    ResumableEarlyStopping,
    fix_keras_save_cache,
)
from keras_rnn.runs import RunDir
from keras_rnn.trainer import _history_state


def write_history(run: RunDir, val_losses):
    run.path.mkdir(parents=True, exist_ok=True)
    with run.history_csv.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "loss", "val_loss"])
        for epoch, value in enumerate(val_losses):
            writer.writerow([epoch, 1.0, value])


def test_history_is_trimmed_to_the_restored_epoch(tmp_path):
    run = RunDir(tmp_path / "run")
    write_history(run, [0.9, 0.5, 0.7, 0.6, 0.4])  # epoch 4 ran after the last backup
    best, wait = _history_state(run, first_epoch=4)
    assert (best, wait) == (0.5, 2)
    with run.history_csv.open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0", "1", "2", "3"]


def test_no_history_means_a_fresh_start(tmp_path):
    run = RunDir(tmp_path / "run")
    assert _history_state(run, first_epoch=0) == (math.inf, 0)
    write_history(run, [0.9])
    assert _history_state(run, first_epoch=0) == (math.inf, 0)
    assert not run.history_csv.exists()


def tiny_model():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", "mse")
    return model


def test_best_weights_saves_only_improvements_over_the_seeded_best(tmp_path):
    path = tmp_path / "best.weights.h5"
    callback = BestWeights(path, best=0.5)
    callback.set_model(tiny_model())
    callback.on_epoch_end(0, {"val_loss": 0.6})
    assert not path.exists()
    callback.on_epoch_end(1, {"val_loss": 0.4})
    assert path.is_file() and callback.best == 0.4
    assert not list(tmp_path.glob(".tmp-*"))


def test_saves_reuse_keras_attribute_sets_and_keep_every_weight(tmp_path):
    """``fix_keras_save_cache``: Keras's cache answers (the same set object each time) and a
    saved model loads back whole, optimizer included."""
    from keras.src.saving import saving_lib

    fix_keras_save_cache()
    for kind in ("Layer", "Functional", "Optimizer", "Metric"):
        assert saving_lib.get_attr_skipset(kind) is saving_lib.get_attr_skipset(kind)
    model, path = tiny_model(), tmp_path / "model.weights.h5"
    model.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0)  # the optimizer's variables
    model.save_weights(path)
    again = tiny_model()
    again.optimizer.build(again.trainable_variables)
    again.load_weights(path)
    for saved, loaded in [(model, again), (model.optimizer, again.optimizer)]:
        assert len(saved.variables) == len(loaded.variables) > 1
        for a, b in zip(saved.variables, loaded.variables, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize(("wait", "stops"), [(2, True), (0, False)])
def test_resumed_early_stopping_counts_on(wait, stops):
    callback = ResumableEarlyStopping(monitor="val_loss", patience=3, best=0.5, wait=wait)
    model = tiny_model()
    callback.set_model(model)
    callback.on_train_begin()
    assert (callback.best, callback.wait) == (0.5, wait)
    callback.on_epoch_end(5, {"val_loss": 0.8})  # a resumed epoch, no improvement: wait + 1
    assert model.stop_training is stops


def test_fresh_early_stopping_is_plain_keras():
    callback = ResumableEarlyStopping(monitor="val_loss", patience=3)
    callback.set_model(tiny_model())
    callback.on_train_begin()
    assert callback.wait == 0 and callback.best is None


def test_a_backup_interrupted_mid_write_still_resumes(tmp_path):
    """Ctrl-C (or a kill) while the backup's weights are being written: the next run restores
    the previous, whole backup instead of failing on a half-written file."""
    import h5py

    backup = tmp_path / "backup"
    model = tiny_model()
    callback = ExactBackupAndRestore(backup, double_checkpoint=True, delete_checkpoint=False)
    callback.set_model(model)
    callback.on_epoch_end(0)  # a whole backup after epoch 0
    saved = [weights.copy() for weights in model.get_weights()]

    def interrupted_write(filepath, overwrite=True):  # the file exists, its layers do not yet
        h5py.File(filepath, "w").close()
        raise KeyboardInterrupt

    model.save_weights = interrupted_write
    with pytest.raises(KeyboardInterrupt):
        callback.on_epoch_end(1)

    resumed = tiny_model()
    restore = ExactBackupAndRestore(backup, double_checkpoint=True, delete_checkpoint=False)
    restore.set_model(resumed)
    restore.on_train_begin()
    assert resumed._initial_epoch == 1
    assert all((a == b).all() for a, b in zip(resumed.get_weights(), saved, strict=True))
