"""Where the real photos are: the one resolver of the shared data folder.

``$ROLLCALL_SHARED_DIR`` when set, else ``shared/`` beside the repository (``../shared`` from its
root). The evaluations, the benchmarks and the tests all ask here; whether a missing folder skips or
fails is the caller's decision.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED_DIR_ENV = "ROLLCALL_SHARED_DIR"
REPO_DIR = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared data folder (it may not exist)."""
    configured = os.environ.get(SHARED_DIR_ENV)
    return Path(configured) if configured else REPO_DIR.parent / "shared"
