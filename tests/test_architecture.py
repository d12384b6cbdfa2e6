"""The package's imports follow the layer order of ``docs/architecture.md`` and have no cycle.

The layer table is read from the document itself (its fenced ``layers`` block), so the
map a newcomer reads and the imports the code makes cannot drift apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mpcactors"
DOC = ROOT / "docs" / "architecture.md"


def layers() -> dict[str, int]:
    """``{unit: layer}`` from the ``layers`` block: one line per layer, highest first."""
    text = DOC.read_text()
    start = text.index("```layers\n") + len("```layers\n")
    block = text[start : text.index("```", start)]
    out: dict[str, int] = {}
    for line in block.strip().splitlines():
        number, units = line.split(":", 1)
        for unit in units.split():
            out[unit] = int(number)
    return out


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every package module ``name`` imports, at any depth of its code (deferred imports too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from package import submodule` imports the submodule
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "mpcactors"


GRAPH = {name: imports(name, path, set(modules())) for name, path in modules().items()}


def test_every_unit_of_the_package_has_a_layer():
    missing = sorted({unit(m) for m in GRAPH} - set(layers()))
    assert missing == [], f"add these to the layers block of docs/architecture.md: {missing}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_only_go_down_the_layers(module):
    order = layers()
    upward = sorted(
        target for target in GRAPH[module]
        if unit(target) != unit(module) and order[unit(target)] >= order[unit(module)]
    )
    assert upward == [], f"{module} (layer {order[unit(module)]}) imports {upward} at the same or a higher layer"


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(GRAPH[node]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)
