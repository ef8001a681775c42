"""No import cycle among the modules of keras_rnn/, export/ and serving/.

Every import counts, at the top of a module or inside a function, except those under
``if TYPE_CHECKING:`` (never run). Importing ``a.b.c`` also runs the package ``a.b``, so it
depends on ``a.b`` too, unless the importer is inside ``a.b`` already (importing
``a.b`` itself by name still counts).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("keras_rnn", "export", "serving")
TYPE_CHECKING = ("TYPE_CHECKING", "typing.TYPE_CHECKING")  # the conditions of type-only imports


def modules(root: Path) -> dict[str, Path]:
    """Each module's dotted name (a package's is that of its ``__init__.py``), with its file."""
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(module: str, path: Path) -> set[str]:
    """The dotted names ``module`` imports, relative imports made absolute (``X.Y`` for
    ``from X import Y``, whether ``Y`` is a module or a name in one)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in _run_nodes(ast.parse(path.read_text(encoding="utf-8")).body):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _run_nodes(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """``nodes`` and all below them, leaving out the bodies of ``if TYPE_CHECKING:``."""
    for node in nodes:
        if isinstance(node, ast.If) and ast.unparse(node.test) in TYPE_CHECKING:
            yield from _run_nodes(node.orelse)
        else:
            yield node
            yield from _run_nodes(ast.iter_child_nodes(node))


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each module of ``PACKAGES`` under ``root``, with the modules of ``PACKAGES`` it imports
    and the packages above them that it is not inside."""
    found = modules(root)
    graph = {}
    for module, path in found.items():
        edges = set()
        for name in imported_names(module, path):
            while name and name not in found:  # a name in a module: the module
                name = name.rpartition(".")[0]
            if name:
                edges.add(name)
            while "." in name:  # the packages it runs first, those outside ``module``'s
                name = name.rpartition(".")[0]
                if not module.startswith(f"{name}."):
                    edges.add(name)
        graph[module] = edges - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of ``graph`` with more than one module, sorted."""
    reach = {module: _reachable(graph, module) for module in graph}
    components = {
        frozenset({module, *(other for other in reach[module] if module in reach[other])})
        for module in graph
    }
    return sorted(sorted(component) for component in components if len(component) > 1)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for name in graph[stack.pop()] - seen:
            seen.add(name)
            stack.append(name)
    return seen


def test_no_import_cycle():
    graph = import_graph(REPO)
    found = [
        "; ".join(f"{module} -> {', '.join(sorted(graph[module] & set(c)))}" for module in c)
        for c in cycles(graph)
    ]
    assert not found, "import cycles:\n" + "\n".join(found)


def test_a_cycle_is_found(tmp_path):
    """Through a package's ``__init__`` and an import inside a function, not a type-only one."""
    (tmp_path / "serving" / "inner").mkdir(parents=True)
    (tmp_path / "serving" / "__init__.py").write_text("")
    (tmp_path / "serving" / "inner" / "__init__.py").write_text("from ..outer import run\n")
    (tmp_path / "serving" / "inner" / "leaf.py").write_text("")
    (tmp_path / "serving" / "outer.py").write_text(
        "def run():\n    from serving.inner import leaf\n    import serving.typed\n"
    )
    (tmp_path / "serving" / "typed.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import serving.outer\n"
    )
    for package in ("keras_rnn", "export"):
        (tmp_path / package).mkdir()
    assert cycles(import_graph(tmp_path)) == [["serving.inner", "serving.outer"]]


def test_config_is_a_leaf():
    """``keras_rnn.config`` needs only the error type, so any module may import it."""
    assert import_graph(REPO)["keras_rnn.config"] == {"keras_rnn.errors"}


def test_the_export_does_not_import_the_server():
    """``export`` writes what the server reads (manifest, Triton config) from the runtime's
    facts, never from the server, which it would then need to run."""
    graph = import_graph(REPO)
    exporting = [module for module in graph if module.startswith("export")]
    reached = set().union(*(_reachable(graph, module) for module in exporting))
    assert not {module for module in reached if module.startswith("serving.server")}
