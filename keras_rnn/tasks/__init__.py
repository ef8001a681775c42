"""Tasks: each module provides ``Config`` (its class in ``keras_rnn.config``),
``make_datasets``, ``build_model``, ``compile_args``, ``export_graphs``, ``evaluate`` and
``format_metrics``, and may provide ``callbacks`` (extra Keras
callbacks for training) and ``log_callbacks`` (callbacks that add entries to each epoch's logs;
they run before history.csv is written)."""

from __future__ import annotations

import importlib
from types import ModuleType

from keras_rnn.config import config_class


def load_task(name: str) -> ModuleType:
    """The task module for ``name``; an unknown name is a ``UserError``."""
    config_class(name)
    return importlib.import_module(f"keras_rnn.tasks.{name}")
