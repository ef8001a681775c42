"""Callbacks that survive ``--resume``: best weights written atomically, and early stopping
that picks up its count from the run's history instead of starting over; and the learning
rate in every epoch's logs."""

from __future__ import annotations

import math
from pathlib import Path

import keras

from keras_rnn.runs import atomic_save


class BestWeights(keras.callbacks.Callback):
    """Save the weights whenever ``monitor`` improves.

    Written by hand instead of ``keras.callbacks.ModelCheckpoint`` because that one writes the
    file in place, so a kill mid-write leaves a corrupt checkpoint; this one renames a finished
    temporary file into place. ``best`` seeds the threshold when a run resumes.
    """

    def __init__(self, path: Path, monitor: str = "val_loss", best: float = math.inf):
        super().__init__()
        self.path, self.monitor, self.best = path, monitor, best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value < self.best:
            self.best = float(value)
            atomic_save(self.path, self.model.save_weights)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """``EarlyStopping`` whose best value and patience count can be restored on resume."""

    def __init__(self, best: float = math.inf, wait: int = 0, **kwargs):
        super().__init__(**kwargs)
        self._resume_best, self._resume_wait = best, wait

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if math.isfinite(self._resume_best):
            self.best, self.wait = self._resume_best, self._resume_wait


class LogLearningRate(keras.callbacks.Callback):
    """Put the optimizer's current rate into each epoch's logs, so that history.csv shows the
    schedule. Must come before ``CSVLogger`` in the callback list."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            rate = self.model.optimizer.learning_rate
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(rate))
