"""The run a year ahead (``.ci/run``): the wall clock the tests see is really moved."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from tests.conftest import CLOCK_OFFSET_ENV


def test_a_moved_clock_is_what_the_code_sees(tmp_path: Path) -> None:
    offset = os.environ.get(CLOCK_OFFSET_ENV, "").strip()
    if not offset:
        pytest.skip(f"the clock is not moved in this run ({CLOCK_OFFSET_ENV} unset)")
    marker = tmp_path / "now"
    marker.write_bytes(b"")
    kernel_now = dt.datetime.fromtimestamp(marker.stat().st_mtime, dt.UTC)  # the real time
    moved_by = dt.datetime.now(dt.UTC) - kernel_now
    assert abs(moved_by - dt.timedelta(days=int(offset))) < dt.timedelta(minutes=5)
