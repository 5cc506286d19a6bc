"""The shared data folder: one resolver, and in CI its absence is an error, not a run of skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ml.eval.shared_data import REPO_DIR, SHARED_DIR_ENV, shared_dir


def test_resolver_prefers_the_environment_then_the_folder_beside_the_repository(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(SHARED_DIR_ENV, str(tmp_path))
    assert shared_dir() == tmp_path
    monkeypatch.delenv(SHARED_DIR_ENV)
    assert shared_dir() == REPO_DIR.parent / "shared"
    assert (REPO_DIR / "pyproject.toml").is_file()


def _collect(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    # Without the third-party plugins (schemathesis, playwright...): only the conftest matters here.
    environment = {
        **os.environ,
        SHARED_DIR_ENV: str(tmp_path / "absent"),
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    environment.pop("CI", None)
    if ci is not None:
        environment["CI"] = ci
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"),
            "tests/test_shared_data.py",
        ],
        cwd=REPO_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_missing_shared_folder_stops_a_ci_run(tmp_path: Path) -> None:
    result = _collect(tmp_path, ci="true")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "shared data folder is missing" in result.stderr
    assert str(tmp_path / "absent") in result.stderr


def test_missing_shared_folder_outside_ci_only_skips(tmp_path: Path) -> None:
    result = _collect(tmp_path, ci=None)
    assert result.returncode == pytest.ExitCode.OK, result.stdout + result.stderr
