"""The import rules of docs/architecture.md, checked on the source (every import statement,
including those inside functions and under ``TYPE_CHECKING``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: str) -> dict[str, Path]:
    """``dotted.name -> path`` of every Python module under ``package``."""
    base = ROOT / package.replace(".", "/")
    found = {}
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> set[str]:
    """Every module ``module`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for module, path in _modules(package).items():
        for name in sorted(_imports(module, path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{module} imports {name}")
    return found


RULES = {
    "ml": ("app", "bench", "harness", "tests"),
    "app": ("bench", "harness", "tests"),
    "harness": ("bench", "tests"),
    "bench": ("tests",),
    "app.storage": ("app.services", "app.routers", "app.schemas", "app.main", "fastapi"),
    "app.services": (
        "fastapi",
        "starlette",
        "app.schemas",
        "app.routers",
        "app.deps",
        "app.security",
        "app.main",
    ),
}


@pytest.mark.parametrize("package", sorted(RULES))
def test_import_rules(package: str) -> None:
    assert _violations(package, RULES[package]) == []


def test_services_reach_the_store_only_through_the_repositories() -> None:
    """``ctx.store`` is used by :mod:`app.services.context` (which builds the repositories) and
    nowhere else in the services: keys are built and objects read and written in
    :mod:`app.services.records` (and by the heads' own store, :class:`app.services.heads.HeadStore`)."""
    found = []
    for module, path in _modules("app.services").items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "store"
                and isinstance(node.value, ast.Name)
                and node.value.id in ("ctx", "context")
            ):
                found.append(f"{module}:{node.lineno}")
    assert found == []


def test_the_checker_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text(
        "def f():\n    from fastapi import Request\nfrom .records import Classes\n",
        encoding="utf-8",
    )
    names = _imports("app.services.probe", path)
    assert {"fastapi", "app.services.records.Classes"} <= names
