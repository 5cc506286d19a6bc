"""The audit log's events: one object each, at the bucket's root."""

from __future__ import annotations

from datetime import date, timedelta

from app.records import keys
from app.records.base import Repository
from app.records.documents import AuditEventDoc

DAYS_LISTED_ONE_BY_ONE = 7
"""Up to a week of a month is listed day by day (a request each); more, the month at once (one
request per 1000 events, and the other days' keys are dropped)."""


class AuditEvents(Repository):
    """One object per event, at the bucket's root (outside ``classes/``: deleting a class or a
    student keeps it), created if absent and never rewritten or deleted by the service."""

    def add(self, doc: AuditEventDoc) -> bool:
        """Write the event; False when it is there already (a retry of a write that landed)."""
        return self._create(keys.audit_key(doc.at.date(), doc.id, doc.class_id), doc)

    def listed(self, first: date, last: date) -> list[tuple[str, keys.AuditRef]]:
        """``(key, what it names)`` of every event from ``first`` to ``last`` (UTC days,
        inclusive), oldest first. A month is listed whole when more than
        :data:`DAYS_LISTED_ONE_BY_ONE` of its days are wanted, else day by day."""
        found: list[tuple[str, keys.AuditRef]] = []
        for prefix in _audit_prefixes(first, last):
            for key in self._store.list(prefix):
                ref = keys.parse_audit_key(key)
                if ref is not None and first <= ref.day <= last:
                    found.append((key, ref))
        found.sort(key=lambda item: (item[1].day, item[1].event_id))
        return found

    def get(self, key: str) -> AuditEventDoc | None:
        return self._read(key, AuditEventDoc)


def _audit_prefixes(first: date, last: date) -> list[str]:
    by_month: dict[tuple[int, int], list[date]] = {}
    for offset in range((last - first).days + 1):  # never past ``last``: 9999-12-31 is valid
        day = first + timedelta(days=offset)
        by_month.setdefault((day.year, day.month), []).append(day)
    prefixes = []
    for (year, month), days in by_month.items():
        if len(days) > DAYS_LISTED_ONE_BY_ONE:
            prefixes.append(keys.audit_month_prefix(year, month))
        else:
            prefixes.extend(keys.audit_day_prefix(d) for d in days)
    return prefixes
