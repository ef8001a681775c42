"""Graphs of a local export answered by a server, so that the task runtimes of
``serving.runtime`` (with the export's vocabularies) predict through it unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from serving.clients.base import ModelClient, NotFound
from serving.errors import UserError
from serving.runtime.graph import _checked  # the checks ExportedGraph makes of its inputs


class RemoteGraph:
    """``ExportedGraph``'s attributes, from the export's ``manifest.json``, and its call
    (inputs checked the same way), answered by the model of the graph's name on the server
    that ``client`` reaches (``version``, or its latest). Set ``client`` before calling."""

    def __init__(
        self,
        export_dir: Path,
        entry: dict[str, Any],
        client: ModelClient | None = None,
        version: int | None = None,
    ):
        self.name: str = entry["name"]
        self.export_dir = export_dir
        self.inputs: list[dict[str, Any]] = entry["inputs"]
        self.outputs: list[dict[str, Any]] = entry["outputs"]
        self.runtime: dict[str, Any] = entry.get("runtime", {})
        self.masked_input: dict[str, Any] | None = entry.get("masked_input")
        self.client, self.version = client, version

    def __call__(self, **inputs: Any) -> dict[str, np.ndarray]:
        expected = {spec["name"]: spec for spec in self.inputs}
        missing, unexpected = (
            sorted(set(expected) - set(inputs)),
            sorted(set(inputs) - set(expected)),
        )
        if missing or unexpected:
            problems = [f"missing {', '.join(missing)}"] if missing else []
            problems += [f"unexpected {', '.join(unexpected)}"] if unexpected else []
            raise UserError(
                f"graph {self.name} takes inputs {', '.join(expected)}: {'; '.join(problems)}"
            )
        feed = {name: _input(name, value, expected[name]) for name, value in inputs.items()}
        outputs = self.client.predict(self.name, feed, self.version)
        lacking = [spec["name"] for spec in self.outputs if spec["name"] not in outputs]
        if lacking:
            raise UserError(
                f"model {self.name!r} at {self.client.url} answered outputs "
                f"{', '.join(sorted(outputs)) or '(none)'}, not {', '.join(lacking)}: "
                "does the server serve this export?"
            )
        return outputs

    def sibling(self, name: str) -> RemoteGraph:
        """The export's graph ``name``, on the same server and version."""
        return RemoteGraph(
            self.export_dir, manifest_entry(self.export_dir, name), self.client, self.version
        )

    def served(self) -> bool:
        """Whether the server has an available version of this graph's model."""
        try:
            status = self.client.status(self.name, self.version)
        except NotFound:
            return False
        versions = status.get("model_version_status", []) if isinstance(status, dict) else []
        return any(v.get("state") == "AVAILABLE" for v in versions if isinstance(v, dict))


def _input(name: str, value: Any, spec: dict[str, Any]) -> np.ndarray:
    if spec["dtype"] == "string":
        return np.asarray(value, dtype=object)
    return _checked(name, value, spec)


def manifest_entry(export_dir: Path, name: str | None = None) -> dict[str, Any]:
    """The manifest's entry of graph ``name``; without a name, of the only graph or the one
    its runtime facts mark ``default`` (as ``load_graph`` picks, SavedModel-only graphs too:
    TF Serving serves those)."""
    manifest_path = export_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = {entry["name"]: entry for entry in manifest["graphs"]}
    except FileNotFoundError:
        raise UserError(
            f"{manifest_path} is missing: export the run first (python -m export RUN_DIR)"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as error:
        raise UserError(f"{manifest_path} is malformed ({error})") from None
    if name is None:
        defaults = [n for n, entry in entries.items() if entry.get("runtime", {}).get("default")]
        if len(defaults) == 1:
            entries = {defaults[0]: entries[defaults[0]]}
        if len(entries) != 1:
            raise UserError(f"the export has graphs {', '.join(entries)}: pick one with --graph")
        name = next(iter(entries))
    if name not in entries:
        raise UserError(f"the export has no graph {name!r} (graphs: {', '.join(entries)})")
    return entries[name]
