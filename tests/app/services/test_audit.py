"""The audit log's rules on an in-memory store: one object per event, found by date range and
class, newest first; an event that cannot be written is retried, never raised nor lost quietly."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator

import pytest

from app.core.errors import InvalidInputError
from app.records import keys
from app.records.audit import AuditEvents
from app.records.cleanup import PendingCleanup
from app.services.audit import Action, AuditLog, AuditSubject, default_range
from app.storage import StorageUnavailableError
from tests.app.services.fakes import FailingStore, MemoryStore

DAY = dt.date(2026, 11, 29)


class Clock:
    """A clock the test moves."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def at(self, day: dt.date, hour: int = 9) -> None:
        self.now = dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


@pytest.fixture
def cleanup() -> Iterator[PendingCleanup]:
    pending = PendingCleanup()
    yield pending
    pending.close()


def _log(store: MemoryStore, cleanup: PendingCleanup, clock: Clock) -> AuditLog:
    return AuditLog(AuditEvents(store), cleanup, clock)


def _event(action: Action, class_id: str | None, **ids: str) -> tuple[Action, str, AuditSubject]:
    """What a caller records: the action, the actor and the ids."""
    subject = AuditSubject(
        class_id=class_id, student_id=ids.get("student_id"), session_id=ids.get("session_id")
    )
    return action, "key 1", subject


def test_audit_keys_parse_back_to_what_built_them() -> None:
    key = keys.audit_key(DAY, "20261129t101010123-0a1b2c3d", "physics-7b")
    assert key == "audit/2026/11/29/20261129t101010123-0a1b2c3d.physics-7b.json"
    assert keys.parse_audit_key(key) == keys.AuditRef(
        DAY, "20261129t101010123-0a1b2c3d", "physics-7b"
    )
    bare = keys.audit_key(DAY, "20261129t101010123-0a1b2c3d", None)
    assert keys.parse_audit_key(bare) == keys.AuditRef(DAY, "20261129t101010123-0a1b2c3d", None)
    for other in (
        "audit/2026/11/29/x.json.tmp",
        "audit/2026/13/01/x.json",
        "audit/2026/11/x.json",
        "audit/2026/11/29/x..json",
        keys.CLASS.key(class_id="physics"),
    ):
        assert keys.parse_audit_key(other) is None, other


def test_events_by_date_range_and_class_newest_first(cleanup: PendingCleanup) -> None:
    store = MemoryStore()
    clock = Clock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    log = _log(store, cleanup, clock)
    # Three months, so that a range lists some months whole and some days one by one.
    days = [dt.date(2026, 9, 30), dt.date(2026, 10, 1), dt.date(2026, 10, 20), DAY]
    for number, day in enumerate(days):
        clock.at(day)
        log.record(*_event(Action.SESSION_CREATE, "a", session_id=f"s{number}"))
        clock.at(day, hour=10)
        log.record(*_event(Action.SESSION_CREATE, "b", session_id=f"s{number}"))
    clock.at(DAY, hour=11)
    log.record(*_event(Action.ACCESS_DENIED, None))
    listed = store.list("")
    assert len(listed) == 9 and all(k.startswith("audit/") for k in listed)

    everything = log.events(days[0], DAY)
    assert [e.at for e in everything] == sorted((e.at for e in everything), reverse=True)
    assert len(everything) == 9 and everything[0].action == "access.denied"
    only_a = log.events(days[0], DAY, class_id="a")
    assert [e.session_id for e in only_a] == ["s3", "s2", "s1", "s0"]
    # A caller limited to class b sees neither class a nor the event of no class.
    scoped = log.events(days[0], DAY, visible=frozenset({"b"}))
    assert {e.class_id for e in scoped} == {"b"} and len(scoped) == 4
    # Inclusive on both ends; the days outside are left out.
    october = log.events(dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    assert sorted(e.session_id for e in october if e.session_id) == ["s1", "s1", "s2", "s2"]
    one_day = log.events(DAY, DAY, limit=2)
    assert [e.action for e in one_day] == ["access.denied", "session.create"]
    assert one_day[1].class_id == "b"


def test_a_range_is_checked(cleanup: PendingCleanup) -> None:
    log = _log(MemoryStore(), cleanup, Clock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    with pytest.raises(InvalidInputError, match="after"):
        log.events(DAY, DAY - dt.timedelta(days=1))
    with pytest.raises(InvalidInputError, match="366 days"):
        log.events(DAY - dt.timedelta(days=366), DAY)
    assert log.events(DAY - dt.timedelta(days=365), DAY) == []
    # The ends of the calendar are dates like others.
    assert log.events(*default_range(None, dt.date.min)) == []
    assert log.events(dt.date.max - dt.timedelta(days=40), dt.date.max) == []


def test_concurrent_events_never_overwrite_each_other(cleanup: PendingCleanup) -> None:
    store = MemoryStore()
    clock = Clock(dt.datetime(2026, 11, 29, 9, tzinfo=dt.UTC))  # every event in the same ms
    log = _log(store, cleanup, clock)
    barrier = threading.Barrier(20)

    def record(number: int) -> None:
        barrier.wait(timeout=30)
        log.record(*_event(Action.STATUS_SET, "a", student_id=f"s{number}"))

    threads = [threading.Thread(target=record, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    found = log.events(DAY, DAY)
    assert sorted(e.student_id or "" for e in found) == sorted(f"s{n}" for n in range(20))


def test_an_event_is_retried_while_the_store_is_down(
    cleanup: PendingCleanup, caplog: pytest.LogCaptureFixture
) -> None:
    store = FailingStore()
    store.put_error = StorageUnavailableError("down", reason="storage server unreachable")
    store.fail_put = lambda key: key.startswith("audit/")
    log = _log(store, cleanup, Clock(dt.datetime(2026, 11, 29, 9, tzinfo=dt.UTC)))
    log.record(*_event(Action.STUDENT_DELETE, "a", student_id="ada"))  # does not raise
    assert store.keys() == [] and cleanup.pending == 1
    assert cleanup.run_now() == 1  # still down: kept
    store.heal()
    assert cleanup.run_now() == 0
    [event] = log.events(DAY, DAY)
    assert (event.action, event.student_id, event.actor) == ("student.delete", "ada", "key 1")
    assert cleanup.run_now() == 0 and len(store.keys()) == 1  # a retry never doubles it
    # Any other failure is logged at ERROR with the event (ids only), never raised.
    store.put_error = OSError("disk full")
    store.fail_put = lambda key: True
    with caplog.at_level(logging.ERROR, logger="app.services.audit"):
        log.record(*_event(Action.STUDENT_DELETE, "a", student_id="bob"))
    assert any('"student_id":"bob"' in r.getMessage() for r in caplog.records)
    assert cleanup.pending == 0
