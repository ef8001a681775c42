"""Callbacks that survive ``--resume``: a backup that also keeps the random generators, best
weights written atomically, and early stopping that picks up its count from the run's history
instead of starting over; the learning rate in every epoch's logs; and each epoch's progress
on a terminal."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_rnn.errors import UserError
from keras_rnn.runs import atomic_save, atomic_write_bytes, read_json, write_json
from serving.progress import Progress


class ExactBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` (weights, optimizer state, epoch) plus the random generators, so
    that a resumed run repeats the uninterrupted one exactly (same seed, same machine): every
    seed generator of the model (dropout masks: Keras keeps their counters in variables that
    the saved weights leave out, so a new process would start them over), and Python's and
    NumPy's global generators. The data order needs no state (``keras_rnn.epochs``).

    The generators' state goes into ``random_state.json`` before Keras writes its backup, for
    the current and the previous backup (Keras falls back to the previous one if the current
    one is corrupt). Put this callback last: at an epoch's end, everything the other callbacks
    write (history row, best weights) is on disk before the backup says the epoch is done.
    """

    def __init__(self, backup_dir: Path, **kwargs):
        super().__init__(backup_dir, **kwargs)
        self.random_state_path = Path(backup_dir) / "random_state.json"
        self.restored = False

    def _seed_states(self) -> list:
        return [v for v in self.model.variables if v.name == "seed_generator_state"]

    def _random_state(self) -> dict[str, Any]:
        _, mt_state, position, has_gauss, gauss = np.random.get_state()
        return {
            "seed_generators": [
                keras.ops.convert_to_numpy(v).tolist() for v in self._seed_states()
            ],
            "python": random.getstate(),
            "numpy": [mt_state.tolist(), int(position), int(has_gauss), float(gauss)],
        }

    def _saved_states(self) -> dict[str, Any]:
        if not self.random_state_path.is_file():
            return {}
        states = read_json(self.random_state_path)  # damaged: one line naming the file
        if not isinstance(states, dict):
            raise UserError(f"{self.random_state_path} is not a backup's random state")
        return states

    def on_epoch_begin(self, epoch, logs=None):
        if self.restored:
            return
        self.restored = True
        if epoch == 0:
            return
        state = self._saved_states().get(str(epoch))
        if state is None:
            print(
                f"note: the backup keeps no random state for epoch {epoch} (an older backup): "
                "this run does not repeat an uninterrupted one exactly"
            )
            return
        for variable, value in zip(self._seed_states(), state["seed_generators"], strict=True):
            variable.assign(value)
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))
        mt_state, position, has_gauss, gauss = state["numpy"]
        np.random.set_state(("MT19937", np.array(mt_state, np.uint32), position, has_gauss, gauss))

    def on_epoch_end(self, epoch, logs=None):
        kept = {k: v for k, v in self._saved_states().items() if k == str(epoch)}
        write_json(self.random_state_path, {**kept, str(epoch + 1): self._random_state()})
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        """Keras's own backup, each file written whole and renamed into place. Keras writes
        ``latest.weights.h5`` in place, so Ctrl-C or a kill in the middle left a file that
        ``--resume`` could not load: Keras falls back to the previous backup on ``OSError``
        only, and a half-written file raises ``ValueError``."""
        weights, metadata = Path(self._weights_path), Path(self._training_metadata_path)
        if self.double_checkpoint:
            for path, previous in (
                (weights, self._prev_weights_path),
                (metadata, self._prev_training_metadata_path),
            ):
                if path.is_file():
                    atomic_write_bytes(Path(previous), path.read_bytes())
        atomic_save(weights, self.model.save_weights)
        state = {
            "epoch": self._current_epoch,
            "batch": self._last_batch_seen,
            # whether the optimizer's state includes float16 loss scaling (trainer checks it)
            "loss_scale": isinstance(self.model.optimizer, keras.optimizers.LossScaleOptimizer),
        }
        atomic_write_bytes(metadata, json.dumps(state).encode())


def fix_keras_save_cache() -> None:
    """Work around a fault of Keras 3.15.1's saving (still in its main branch): before each
    object it saves, ``saving_lib.get_attr_skipset`` looks its set of attribute names up under
    ``saving_attr_skiplist_<type>`` but caches it under ``saving_attr_skipset_<type>``, so
    every ``save_weights`` builds reference ``Layer``, ``Optimizer``, ``Metric``... objects
    again (a save of the sine GRU with its Adam state: 29 ms, 18 ms with this), and training
    saves up to twice an epoch (the backup, the best weights). Storing Keras's own sets under
    the key it reads makes its cache work."""
    from keras.src.backend.common import global_state
    from keras.src.saving import saving_lib

    for kind in ("Operation", "Layer", "Functional", "Sequential", "Metric", "Optimizer", "Loss"):
        key = f"saving_attr_skiplist_{kind}"
        if global_state.get_global_attribute(key) is None:
            global_state.set_global_attribute(key, saving_lib.get_attr_skipset(kind))


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


class EpochProgress(keras.callbacks.Callback):
    """The current epoch's batches done, then its validation, on stderr while that is a
    terminal (``serving.progress``): for fits whose stdout is not one, where Keras prints
    one line per epoch (``verbose=2``) only once the epoch has ended."""

    def __init__(self):
        super().__init__()
        self.progress: Progress | None = None

    def on_epoch_begin(self, epoch, logs=None):
        label = f"epoch {epoch + 1}/{self.params['epochs']}"
        self.progress = Progress(label, self.params.get("steps") or 0, (sys.stderr,))
        self.progress.update(0)

    def on_train_batch_end(self, batch, logs=None):
        if self.progress is not None:
            self.progress.update(batch + 1)  # under steps_per_execution: every Nth batch

    def on_test_begin(self, logs=None):
        if self.progress is not None:
            self.progress.update(self.progress.done, "validation")

    def on_epoch_end(self, epoch, logs=None):
        if self.progress is not None:
            self.progress.close()
            self.progress = None
