"""The roster-cost benchmark's class is what its docstring says (measured figures depend on it)."""

from __future__ import annotations

from pathlib import Path

from app.services import attendance
from app.storage import DiskObjectStore
from bench.roster_cost import CLASS_ID, fill


def test_the_benchmark_class(tmp_path: Path) -> None:
    ctx = fill(DiskObjectStore(tmp_path), students=4, sessions=3, photos=1)
    try:
        listed = attendance.list_sessions(ctx, CLASS_ID)
        # One photo naming every other student (s000, s002); s000 also marked late by hand.
        assert [(s.present_count, s.photo_count) for s in listed] == [(2, 1)] * 3
        report = attendance.term_report(ctx, CLASS_ID, None, None)
        statuses = {row.student_id: row.statuses for row in report.students}
        assert statuses == {
            "s000": ["late"] * 3,
            "s001": ["absent"] * 3,
            "s002": ["present"] * 3,
            "s003": ["absent"] * 3,
        }
    finally:
        ctx.trainer.close()
        ctx.backfill.close()
        ctx.cleanup.close()
