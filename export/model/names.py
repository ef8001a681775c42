"""Names for what ``python -m export.model`` writes: the manifest's task, and a model's
names made valid for folders, files, TF Serving, Triton and ONNX."""

from __future__ import annotations

import re

MANIFEST_TASK = "keras_model"  # manifest.json's task: this command wrote the folder


def safe_name(text: str) -> str:
    """``text`` as a name for a folder, a file, a TF Serving or Triton model, an ONNX tensor:
    letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_.-")
    return name if re.match(r"[A-Za-z0-9]", name) else f"x_{name}".rstrip("_")


def unique_names(names: list[str], taken: list[str] = ()) -> list[str]:
    """``safe_name`` of each name, with ``_1``, ``_2``, ... added to repeats (also of
    ``taken``)."""
    seen, unique = set(taken), []
    for name in map(safe_name, names):
        candidate, count = name, 0
        while candidate in seen:
            count += 1
            candidate = f"{name}_{count}"
        seen.add(candidate)
        unique.append(candidate)
    return unique
