"""Graphs of a local export answered by a server, so that the task runtimes of
``serving.runtime`` (with the export's vocabularies) predict through it unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from serving.clients.base import ModelClient, NotFound
from serving.errors import UserError
from serving.runtime.graph import checked_inputs, manifest_entry


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
        feed = checked_inputs(self.name, self.inputs, inputs)
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
