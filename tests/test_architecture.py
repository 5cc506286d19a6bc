"""The import rules of docs/architecture.md, checked on the source (every import statement,
including those inside functions and under ``TYPE_CHECKING``)."""

from __future__ import annotations

import ast
import sys
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


TORCH = ("torch", "torchvision", "facenet_pytorch")
"""torch is the tests' reference only (the ``torch`` dependency group); nothing in ``ml`` imports it."""

RULES = {
    "ml": ("app", "bench", "harness", "tests", *TORCH),
    # The runtime package: the service imports it, so it names the exporter only as a command
    # (``python -m ml.export`` in a child process) and needs neither onnx nor torch.
    "ml.weights": ("ml.export", "onnx"),
    "app": ("bench", "harness", "tests", *TORCH),
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


def test_only_the_exporter_imports_the_exporter() -> None:
    """The service (``app`` and every ``ml`` module it can reach) never imports ``ml.export``: a
    missing model is exported by ``python -m ml.export`` in a child process."""
    found = []
    for package in ("ml", "app", "harness"):
        for module, path in _modules(package).items():
            if module == "ml.export" or module.startswith("ml.export."):
                continue
            found += [
                f"{module} imports {name}"
                for name in sorted(_imports(module, path))
                if name == "ml.export" or name.startswith("ml.export.")
            ]
    assert found == []


def test_the_exporter_needs_only_the_runtime_package() -> None:
    """``ml.export`` imports nothing of ``ml`` but itself and ``ml.weights``: the Dockerfile copies
    just those two packages before it exports, so a change elsewhere in ``ml`` reuses the layer."""
    found = []
    for module, path in _modules("ml.export").items():
        found += [
            f"{module} imports {name}"
            for name in sorted(_imports(module, path))
            if name.startswith("ml.")
            and not name.startswith(("ml.export.", "ml.weights."))
            and name not in ("ml.export", "ml.weights")
        ]
    assert found == []


def _import_cycles(package: str) -> list[list[str]]:
    """The strongly connected components of more than one module in ``package``'s import graph
    (every import statement, in functions too), each sorted (Tarjan's algorithm)."""
    modules = _modules(package)
    graph = {
        module: sorted(
            name for name in _imports(module, path) if name in modules and name != module
        )
        for module, path in modules.items()
    }
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        for imported in graph[module]:
            if imported not in index:
                visit(imported)
                lowest[module] = min(lowest[module], lowest[imported])
            elif imported in stack:
                lowest[module] = min(lowest[module], index[imported])
        if lowest[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return sorted(cycles)


def test_no_import_cycle_in_ml() -> None:
    assert _import_cycles("ml") == []


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from probe.b import f\n")
    (package / "b.py").write_text("def f():\n    from probe import a\n")
    (package / "c.py").write_text("import probe.a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _import_cycles("probe") == [["probe.a", "probe.b"]]


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
