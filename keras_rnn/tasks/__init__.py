"""Tasks: each module provides ``Config`` (its class in ``keras_rnn.config``),
``make_datasets``, ``build_model``, ``compile_args``, ``evaluate`` and ``format_metrics``
(DESIGN.md section 4)."""

from __future__ import annotations

import importlib
from types import ModuleType

from keras_rnn.config import CONFIGS
from keras_rnn.errors import UserError

TASKS = tuple(CONFIGS)


def load_task(name: str) -> ModuleType:
    """The task module for ``name``; an unknown name is a ``UserError``."""
    if name not in TASKS:
        raise UserError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    return importlib.import_module(f"keras_rnn.tasks.{name}")
