"""The package's layers: a module imports only from its own layer and the layers below (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "sagalang"

# Lowest first. Each entry is a top-level module or subpackage of sagalang.
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"source", "status", "context", "redact", "lexer", "errors", "diagnostics", "plugins"}),
    (
        "language",
        {
            "ir",
            "precedence",
            "transform",
            "parser",
            "expr",
            "graph",
            "semantics",
            "project",
            "fmt",
            "validate",
            "plan",
            "spec",
            "export",
            "docgen",
            "templates",
            "types",
        },
    ),
    ("journal", {"events", "state", "journal"}),
    ("runtime", {"runtime", "interpreter", "coordinator", "worker", "operations", "inputs", "otel", "progress"}),
    ("tools", {"render", "lsp", "ui"}),
    ("interface", {"cli", "testing", "pytest_plugin", "__main__", "__init__"}),
]
LAYER_OF = {name: i for i, (_, names) in enumerate(LAYERS) for name in names}


def _unit(path: Path) -> str:
    """The layered unit a file belongs to: its top-level module or subpackage."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_units(path: Path) -> set[str]:
    """The sagalang units ``path`` imports (module level or inside functions)."""
    rel = path.relative_to(PACKAGE)
    package = list(rel.parts[:-1])  # the file's own package, below sagalang
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                parts = base + (node.module.split(".") if node.module else [])
                if parts:
                    found.add(parts[0])
                else:  # ``from . import x`` at the package's top
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.split(".")[0] == "sagalang":
                parts = node.module.split(".")
                found.add(parts[1] if len(parts) > 1 else "__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "sagalang":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    return found


FILES = sorted(PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer() -> None:
    units = {_unit(f) for f in FILES}
    assert units - LAYER_OF.keys() == set(), "add new modules to LAYERS and to docs/architecture.md"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down(path: Path) -> None:
    unit = _unit(path)
    layer = LAYER_OF[unit]
    upward = sorted(
        f"{other} ({LAYERS[LAYER_OF[other]][0]})"
        for other in _imported_units(path) - {unit}
        if LAYER_OF.get(other, -1) > layer
    )
    assert upward == [], f"{unit} ({LAYERS[layer][0]}) imports from a higher layer: {', '.join(upward)}"


def test_the_architecture_page_lists_every_layer() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name, units in LAYERS:
        assert f"**{name}**" in page
        for unit in units - {"__init__", "__main__"}:
            assert f"`{unit}`" in page, f"docs/architecture.md does not mention `{unit}`"
