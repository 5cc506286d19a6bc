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


HTTP = (
    "fastapi",
    "starlette",
    "app.schemas",
    "app.routers",
    "app.deps",
    "app.security",
    "app.main",
)
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
    # The shared leaves: below everything else of the service.
    "app.core": ("app.storage", "app.records", "app.services", "app.settings", *HTTP),
    "app.storage": ("app.core", "app.records", "app.services", "app.settings", *HTTP),
    "app.records": ("app.services", "app.settings", *HTTP),
    "app.settings": ("app.records", "app.services", *HTTP),
    "app.services": HTTP,
}

SERVICE_FLOORS = (
    "recognition",
    "audit",
    "context",
    "classes",
    "enrolment",
    "attendance",
    "privacy",
    "mobile",
    "imports",
)
"""``app.services``' packages (and the ``context`` module), lowest first: each may import only
those below it. Data flows down; no feature reaches sideways into a sibling."""
PUBLIC_PACKAGES = ("audit", "classes", "enrolment", "attendance", "privacy", "mobile")
"""Features that others use through their package's names (its ``__init__``), never through
its modules: what a feature does not export is its own business."""
MAX_MODULE_LINES = 500
MAX_MODULES_PER_FOLDER = 15


def _service_part(name: str) -> str | None:
    """``"attendance"`` for ``app.services.attendance.roster``; ``None`` outside the services."""
    parts = name.split(".")
    if len(parts) < 3 or parts[:2] != ["app", "services"]:
        return None
    return parts[2] if parts[2] in SERVICE_FLOORS else None


def test_services_import_only_the_floors_below_them() -> None:
    found = []
    for module, path in _modules("app.services").items():
        own = _service_part(module)
        for name in sorted(_imports(module, path)):
            other = _service_part(name)
            above = own and other and SERVICE_FLOORS.index(other) > SERVICE_FLOORS.index(own)
            if above:
                found.append(f"{module} imports {name}, a floor above it")
    assert found == []


def test_features_are_used_through_their_package() -> None:
    found = []
    for module, path in _modules("app").items():
        own = _service_part(module)
        for name in sorted(_imports(module, path)):
            other = _service_part(name)
            if other in PUBLIC_PACKAGES and other != own and name.count(".") > 2:
                submodule = ".".join(name.split(".")[:4])
                if submodule in _modules("app"):
                    found.append(f"{module} reaches into {submodule}")
    assert found == []


def test_no_import_circle() -> None:
    """Every import (inside functions and under ``TYPE_CHECKING`` too) between the project's
    modules; ``from package import module`` is an edge to that module."""
    modules: dict[str, Path] = {}
    for package in ("app", "ml", "bench", "harness"):
        modules.update(_modules(package))
    graph = {
        module: sorted(_dependencies(module, path, modules)) for module, path in modules.items()
    }
    assert _cycles(graph) == []


def _dependencies(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``module`` imports: ``from a import b`` is ``a.b`` when that is a
    module, else ``a``; a package imported for one of its modules is not an edge."""
    names = _imports(module, path)
    found = set()
    for name in names:
        if name in modules and not any(other.startswith(name + ".") for other in names):
            found.add(name)
        elif name not in modules:
            parent = name.rpartition(".")[0]
            while parent and parent not in modules:
                parent = parent.rpartition(".")[0]
            if parent:
                found.add(parent)
    return found - {module}


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in graph.get(node, []):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_modules_and_folders_stay_readable() -> None:
    """No module of ``app`` over 500 lines, no folder with more than 15 modules side by side."""
    too_long = [
        f"{module}: {lines} lines"
        for module, path in _modules("app").items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    ]
    crowded = [
        f"{folder.relative_to(ROOT)}: {count} modules"
        for folder in sorted({path.parent for path in _modules("app").values()})
        if (count := len(list(folder.glob("*.py")))) > MAX_MODULES_PER_FOLDER
    ]
    assert too_long == [] and crowded == []


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
    :mod:`app.records`."""
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
