"""A small, bounded version of ``bench/load_test.py``: the service and SeaweedFS as processes,
60 mixed requests (registrations, attendance photos, reads) from 8 concurrent clients. Zero errors,
zero lost records, nothing half-written; no timing is asserted (figures: docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load_test import LoadConfig, run_load
from harness.reliability import record_figures
from harness.s3server import S3ServerInfo

pytestmark = pytest.mark.slow  # the bounded load test: SeaweedFS and the service as processes


def test_mixed_load_from_concurrent_clients_loses_nothing(
    s3_server: S3ServerInfo, shared_dir: Path
) -> None:
    figures = run_load(
        LoadConfig(requests=60, clients=8, n_views=1, enrolled_before=8), s3_server, shared_dir
    )
    record_figures("load_small", figures)
    assert figures["requests"] == 60
    assert figures["errors"] == 0, figures["error_examples"]
    assert figures["lost"] == 0, figures["lost_examples"]
    assert figures["half_written"] == 0, figures["half_written_examples"]
    assert figures["acknowledged_registrations"] > 8  # the load registered students too
    assert figures["acknowledged_attendance_records"] > 0
