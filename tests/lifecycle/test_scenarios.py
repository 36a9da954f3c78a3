"""Fixed walks through the lifecycle machine, at the exact boundaries, checked by the model.

The random runs (``test_lifecycle.py``, ``make soak``) find boundaries by chance; these
walk onto each one and a tick either side, with a second organization whose records sit at
the same instants under other settings, and check every invariant of the model after
every step. They are also what ``scripts/mutation_check.py`` runs for the lifecycle
mutations: deterministic, a few seconds each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from support.postgres import PgServer

from .machine import TICK, LifecycleMachine, SimulatedCrash
from .model import LOG_HOT_DAYS, UTC, month_end, six_years_after

PLUS_14 = dt.timezone(dt.timedelta(hours=14))
MINUS_12 = dt.timezone(dt.timedelta(hours=-12))
INDIA = dt.timezone(dt.timedelta(hours=5, minutes=30))


@pytest.fixture
def machine(pg_server: PgServer, lifecycle_template: str) -> Iterator[LifecycleMachine]:
    LifecycleMachine.server = pg_server
    LifecycleMachine.template = lifecycle_template
    walk = LifecycleMachine()
    try:
        yield walk
    finally:
        walk.teardown()


def _at(machine: LifecycleMachine, when: dt.datetime, *jobs: str, **scope: object) -> None:
    """Move the clock to ``when``, run ``jobs`` and check every invariant."""
    assert machine.clock is not None
    machine.clock.set(when)
    for name in jobs:
        machine.operate(name, scope.get(name))  # type: ignore[arg-type]
    machine.check()


def test_logs_over_a_year_edge_with_two_retentions(machine: LifecycleMachine) -> None:
    """A's lines are kept 31 days, B's (the same instants) 365; chunks of two lines."""
    newest = dt.datetime(2031, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    machine.setup(start=newest, orgs=2, chunk_rows=2)
    a, b = sorted(machine.model.orgs, key=str)
    machine.keep_logs(a, 31)
    times = [
        newest.astimezone(PLUS_14),  # 1 January 2032 in Kiribati, still December in UTC
        dt.datetime(2031, 12, 1, tzinfo=UTC).astimezone(MINUS_12),  # the month's first instant
        dt.datetime(2031, 12, 15, 6, tzinfo=INDIA),
    ]
    for org in (a, b):
        job = machine.new_job(org)
        machine.append(job, times)
        machine.append(machine.new_job(org), times[1:2])
    machine.check()

    hot_until = month_end(newest) + dt.timedelta(days=LOG_HOT_DAYS)
    _at(machine, hot_until - TICK, "archive_logs")  # December is still hot
    _at(machine, hot_until, "archive_logs")  # now it is archived, whole
    _at(machine, newest + dt.timedelta(days=31), "log_retention")  # A's newest: kept
    _at(machine, newest + dt.timedelta(days=31) + TICK, "log_retention")  # A's gone, B's kept
    assert {line.org for line in machine.model.lines.values() if line.fate != "gone"} == {b}
    _at(machine, newest + dt.timedelta(days=365), "log_retention")  # B's newest: kept
    _at(machine, newest + dt.timedelta(days=365) + TICK, "log_retention")
    assert all(line.fate == "gone" for line in machine.model.lines.values())


def test_log_retention_for_one_organization_leaves_the_others(machine: LifecycleMachine) -> None:
    start = dt.datetime(2035, 3, 31, 22, tzinfo=UTC)
    machine.setup(start=start, orgs=2, chunk_rows=2000)
    a, b = sorted(machine.model.orgs, key=str)
    for org in (a, b):
        machine.keep_logs(org, 30)
        machine.append(machine.new_job(org), [start, start - dt.timedelta(days=20)])
    _at(machine, month_end(start) + dt.timedelta(days=LOG_HOT_DAYS), "archive_logs")
    far = start + dt.timedelta(days=400)
    _at(machine, far, "log_retention", log_retention=b)
    assert {line.org for line in machine.model.lines.values() if line.fate != "gone"} == {a}


def test_audit_from_a_leap_day_to_six_years_later(machine: LifecycleMachine) -> None:
    leap = dt.datetime(2032, 2, 29, 12, tzinfo=UTC)
    machine.setup(start=leap, orgs=2, chunk_rows=2000)
    a, b = sorted(machine.model.orgs, key=str)
    machine.record(a, 2)
    machine.record(b, 1)
    _at(machine, leap + dt.timedelta(days=1))  # 1 March
    machine.record(a, 1)
    machine.record(b, 2)
    march = leap + dt.timedelta(days=1)

    _at(machine, leap + dt.timedelta(days=90), "archive_audit")  # exactly 90 days: still hot
    _at(machine, leap + dt.timedelta(days=90) + TICK, "archive_audit", archive_audit=b)  # B's
    _at(machine, leap + dt.timedelta(days=90) + TICK, "archive_audit")  # A's February too
    _at(machine, march + dt.timedelta(days=90) + TICK, "checkpoint", "archive_audit")
    for org in (a, b):
        for since, until in [
            (None, None),
            (leap, march),
            (leap + TICK, march),
            (leap, march + TICK),
            (march, None),
            (None, leap),
        ]:
            machine.export_matches(org, since, until, INDIA)
    machine.operate("verify")

    machine.audit_days = 2192
    gone_at = max(six_years_after(leap), leap + dt.timedelta(days=2192)) + TICK
    _at(machine, gone_at - TICK, "audit_retention")  # February's segment: one tick short
    _at(machine, gone_at, "audit_retention", audit_retention=b)  # B's February only
    _at(machine, gone_at, "audit_retention")
    last = max(six_years_after(march), march + dt.timedelta(days=2192))
    _at(machine, last, "audit_retention", "verify")  # March's newest: exactly at the cut-off
    _at(machine, last + TICK, "audit_retention", "verify")
    for org in (a, b):
        machine.export_matches(org, None, None, MINUS_12)
    assert all(record.fate == "gone" for record in machine.model.records.values())


def _crash_audit_retention(machine: LifecycleMachine, org: object, ops: int) -> bool:
    """``crash_job('audit_retention', after=True, ops=ops)`` for ``org``, by hand; whether
    the fault tripped (False: the run completed)."""
    assert machine.faulty is not None
    machine.faulty.arm(ops, after=True)
    try:
        machine.run(machine._job("audit_retention", org)())  # type: ignore[arg-type]
    except SimulatedCrash:
        pass
    finally:
        machine.faulty.disarm()
    crashed = machine.faulty.tripped
    if crashed:
        machine.store.archives.cache.clear()
        machine.run(machine.store.engine.dispose())
    machine._apply("audit_retention", org, certain=not crashed)  # type: ignore[arg-type]
    machine.check()
    return crashed


def test_soak_2026_12_07_retention_killed_after_its_tombstone_then_a_longer_one(
    machine: LifecycleMachine,
) -> None:
    """Soak failure 1 ("audit record 1 came back"), its steps that matter: a retention run
    killed after its second blob write (the tombstone), then a completed run under a longer
    retention six years on, which must delete the segment."""
    start = dt.datetime(2038, 1, 19, 3, 14, 6, 999999, tzinfo=UTC)
    machine.setup(start=start, orgs=2, chunk_rows=1)
    b, a = sorted(machine.model.orgs, key=str)
    machine.record(a, 3)
    machine.check()
    _at(machine, dt.datetime(2044, 2, 1, tzinfo=UTC) - TICK)
    machine.record(a, 2)
    _at(machine, machine.now, "archive_audit")
    machine.record(b, 2)
    machine.check()
    assert _crash_audit_retention(machine, a, 1)  # the checkpoint, then the tombstone
    _at(machine, dt.datetime(2050, 2, 1, tzinfo=UTC), "archive_audit", archive_audit=b)
    machine.set_audit_retention(2942)
    assert not _crash_audit_retention(machine, a, 6)  # never reached: the run completes
    gone = [r.seq for r in machine.model.records.values() if r.org == a and r.fate == "gone"]
    assert gone == [1, 2, 3]
