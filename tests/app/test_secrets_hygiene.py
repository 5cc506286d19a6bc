"""Secrets stay out of the repository and the image; the container does not run as root."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(
        r"(?i)aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}\b"
    ),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "API keys with a value in an env file": re.compile(r"(?m)^ROLLCALL_API_KEYS=\S"),
    "data keys with a value in an env file": re.compile(r"(?m)^ROLLCALL_DATA_KEY(?:S_OLD)?=\S"),
}
ALLOWED = re.compile(r"EXAMPLE")  # AWS's documented placeholder (AKIAIOSFODNN7EXAMPLE)


def _git(*args: str) -> str:
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    return subprocess.run(
        ["git", *args], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout


def test_no_secret_in_the_repository() -> None:
    """Every tracked file, and every new file git would add."""
    names = _git("ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    assert len(names) > 20
    found = []
    for name in names:
        path = REPO_ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        for what, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(text):
                if not ALLOWED.search(match.group(0)):
                    found.append(f"{name}: {what}")
    assert not found, found


def test_secret_patterns_can_match() -> None:
    """The scan above is not vacuous (strings built here so this file holds no match)."""
    samples = {
        "AWS access key id": "AKIA" + "Q" * 16,
        "AWS secret access key": "AWS_SECRET_ACCESS_KEY=" + "a" * 40,
        "private key": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "API keys with a value in an env file": "ROLLCALL_API_KEYS=" + "k" * 20,
        "data keys with a value in an env file": "ROLLCALL_DATA_KEYS_OLD=" + "k" * 44,
    }
    for what, sample in samples.items():
        assert SECRET_PATTERNS[what].search(sample), what


def test_env_files_are_ignored_by_git_and_docker() -> None:
    _git("check-ignore", "-q", ".env")  # raises (exit 1) when .env would be committed
    dockerignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in dockerignore


def test_env_example_holds_no_secret_values() -> None:
    text = (REPO_ROOT / ".env.example").read_text()
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "ROLLCALL_API_KEYS",
        "ROLLCALL_DATA_KEY",
        "ROLLCALL_DATA_KEYS_OLD",
    ):
        values = re.findall(rf"(?m)^{name}=(.*)$", text)
        assert all(v.strip() == "" for v in values), name


def test_the_container_runs_as_a_non_root_user() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    final_stage = re.split(r"(?m)^FROM\s", dockerfile)[-1]
    users = re.findall(r"(?m)^USER\s+(\S+)", final_stage)
    assert users, "the runtime stage sets no USER: it would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
