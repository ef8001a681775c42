"""The serving contract: what each task gives ``python -m serving.predict`` (onnxruntime) and
``python -m serving.clients`` (a server); ``task_runtimes``, which finds every task's module
here and checks it against the contract.

A task's serving side is two modules of its name: its library in ``serving/runtime/`` (numpy
and onnxruntime functions of plain values: texts, ``Sampling``, a beam width, which the
training side and the server call too) and its command line here, a ``TaskRuntime``: its
flags, and the prediction from a graph and the parsed arguments, printed by the caller.

Both CLIs add every task's flags to one parser (each flag stays None unless given, so another
task's flag is refused by name), open the graph that the run's export names, and hand it to the
module of the graph's ``runtime.task``: ``predict`` for an onnxruntime graph, ``remote_predict``
for one a server answers (``serving.clients.RemoteGraph``). A new task adds its module here,
nothing in either CLI.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import argparse

    from serving import cli
    from serving.clients.remote import RemoteGraph
    from serving.runtime.graph import ExportedGraph


@runtime_checkable
class TaskRuntime(Protocol):
    """A task's module here. ``predict`` and ``remote_predict`` return the JSON-able result
    (what ``--json`` prints) and the text to print; a user's mistake is a ``UserError``."""

    TITLE: str  # the heading of the task's flags in --help
    TAKES_TEXTS: bool  # whether the positional texts are the task's input (else refused)

    def add_arguments(self, group: cli.FlagGroup) -> None:
        """Add the task's flags to ``group``, each None unless given."""

    def predict(self, graph: ExportedGraph, args: argparse.Namespace) -> tuple[dict, str]:
        """The prediction by ``graph``, the run's graph that the task drives."""

    def remote_predict(self, graph: RemoteGraph, args: argparse.Namespace) -> tuple[dict, str]:
        """The same prediction with ``graph`` answered by a server (``predict`` itself where
        the task calls nothing but ``graph``)."""


def task_runtimes() -> dict[str, TaskRuntime]:
    """Every task's ``TaskRuntime``, by task name: each module of this package, checked."""
    return {
        info.name: check_runtime(importlib.import_module(f"{__name__}.{info.name}"))
        for info in pkgutil.iter_modules(__path__)
    }


def check_runtime(module: ModuleType) -> TaskRuntime:
    """``module`` as a ``TaskRuntime``; a ``TypeError`` naming the members it lacks."""
    if not isinstance(module, TaskRuntime):
        missing = [member for member in _MEMBERS if not hasattr(module, member)]
        raise TypeError(f"task runtime {module.__name__} lacks {', '.join(missing)}")
    return module


_MEMBERS = (
    *TaskRuntime.__annotations__,
    *(name for name in vars(TaskRuntime) if not name.startswith("_")),
)
