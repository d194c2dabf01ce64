"""layer_cache's modules import in one direction (store < pull < resolver < push), all at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import layer_cache

PACKAGE = Path(layer_cache.__file__).parent


def _local_imports(path: Path) -> tuple[set[str], list[int]]:
    """Sibling modules ``path`` imports at top level, and line numbers of sibling imports inside functions."""
    tree = ast.parse(path.read_text())
    top = {node for node in tree.body}
    deps, nested = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            names = [node.module] if node.module else [a.name for a in node.names]
            if node in top:
                deps.update(n.split(".")[0] for n in names)
            else:
                nested.append(node.lineno)
    return deps, nested


def test_no_import_circle_and_no_deferred_sibling_import():
    graph, nested = {}, {}
    for path in sorted(PACKAGE.glob("*.py")):
        if path.stem != "__init__":
            graph[path.stem], lines = _local_imports(path)
            if lines:
                nested[path.stem] = lines
    assert nested == {}

    state: dict[str, int] = {}

    def visit(mod: str, trail: list[str]) -> None:
        assert state.get(mod) != 1, f"import circle: {' -> '.join(trail + [mod])}"
        if state.get(mod) == 2:
            return
        state[mod] = 1
        for dep in graph.get(mod, ()):
            visit(dep, trail + [mod])
        state[mod] = 2

    for mod in graph:
        visit(mod, [])
    assert "resolver" in graph["hub_share"] and "pull" in graph["resolver"] and "resolver" not in graph["pull"]
    assert "store" in graph["pull"] and "key_of" in (PACKAGE / "layout.py").read_text()
