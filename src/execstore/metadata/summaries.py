"""Dashboard summaries: counts by status and duration percentiles per workflow and UTC day.

PostgreSQL: a per-day rollup, ``execution_daily_summary``, kept fresh incrementally. A
trigger on ``execution_metadata`` records each (organization, workflow, day) group a
write made stale in ``execution_summary_dirty`` (progress updates do not fire it);
:func:`refresh_summaries` claims those markers and recomputes only their groups from
the rows, in one statement, so a refresh costs what changed since the last one, not
what the table holds. ``execstore maintain`` runs it; a transaction-scoped advisory lock
lets any number of schedulers call it while only one refreshes at a time (the others
report "skipped"). Why not the plan's materialized view: ``REFRESH MATERIALIZED VIEW
CONCURRENTLY`` recomputes every group from every row each time, so its cost grows with
history. At the benchmark's 200,000 executions, after 1,000 new ones: rollup 0.15 s,
view 0.85 s (WAL 176 KB vs 134 KB); with nothing changed, 0.04 s and 0.5 KB vs 0.55 s
and 52 KB. Same figures (the benchmark compares them row for row), same freshness. The
price is a trigger on the write path (about 13% of a lifecycle's write time there).

SQLite (the documented fallback): the same :func:`read_summary` answers from a plain
query over the executions (``live``), computing the same figures in Python.

Percentiles are ``percentile_cont`` (linear interpolation) over the durations of
finished runs (completed, failed, cancelled, timed out) with a duration, rounded to
whole milliseconds, half up. Days are UTC days of ``created_at``.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.metadata.state import read_state, record_state
from execstore.metadata.types import DailySummary, ExecutionSummary, StatusCounts
from execstore.repository import as_utc
from execstore.schema import models as m
from execstore.schema.enums import ExecutionStatus
from execstore.schema.metadata import on_listing_key

__all__ = [
    "REFRESH_LOCK_KEY",
    "SUMMARY_STATE",
    "SummaryRefresh",
    "aggregates_sql",
    "percentile",
    "read_summary",
    "refresh_summaries",
    "rollup_statement",
]

REFRESH_LOCK_KEY: Final = 0x65786D6574610001
"""The advisory lock one refresh holds (``pg_try_advisory_xact_lock``)."""
SUMMARY_STATE: Final = "summary_refresh"
"""The ``execution_metadata_state`` row that says when the rollup was last refreshed."""

FINISHED: Final = (
    ExecutionStatus.COMPLETED,
    ExecutionStatus.FAILED,
    ExecutionStatus.CANCELLED,
    ExecutionStatus.TIMED_OUT,
)
_COUNT_COLUMNS: Final = {status: status.name.lower() for status in ExecutionStatus}
_FINISHED_SQL: Final = ", ".join(str(int(s)) for s in FINISHED)


@dataclass(frozen=True, slots=True)
class SummaryRefresh:
    """What one refresh did."""

    skipped: bool = False
    """Another refresh held the lock (or the backend has no rollup: SQLite)."""
    reason: str | None = None
    full: bool = False
    groups: int = 0
    """(organization, workflow, day) groups recomputed."""
    rows_written: int = 0
    rows_removed: int = 0
    seconds: float = 0.0


def percentile(sorted_values: Sequence[int], fraction: float) -> int | None:
    """``percentile_cont(fraction)`` of ascending values, rounded half up (None if empty)."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    low, high = math.floor(position), math.ceil(position)
    lo_value, hi_value = float(sorted_values[low]), float(sorted_values[high])
    return math.floor(lo_value + (hi_value - lo_value) * (position - low) + 0.5)


def aggregates_sql(alias: str) -> str:
    """The summary columns as SQL aggregates over execution rows named ``alias``."""
    counts = ",\n".join(
        f"count(*) FILTER (WHERE {alias}.status = {int(status)}) AS {name}"
        for status, name in _COUNT_COLUMNS.items()
    )
    finished = f"{alias}.status IN ({_FINISHED_SQL})"
    pct = (
        "floor(percentile_cont({f}) WITHIN GROUP (ORDER BY {a}.duration_ms) "
        "FILTER (WHERE {w}) + 0.5)::int"
    )
    return (
        f"{counts},\n"
        f"count({alias}.duration_ms) FILTER (WHERE {finished}) AS timed_runs,\n"
        f"coalesce(sum({alias}.duration_ms) FILTER (WHERE {finished}), 0) AS duration_total_ms,\n"
        f"{pct.format(f=0.5, a=alias, w=finished)} AS duration_p50_ms,\n"
        f"{pct.format(f=0.95, a=alias, w=finished)} AS duration_p95_ms"
    )


_VALUE_COLUMNS: Final = (
    *_COUNT_COLUMNS.values(),
    "timed_runs",
    "duration_total_ms",
    "duration_p50_ms",
    "duration_p95_ms",
)
_KEY: Final = ("organization_id", "workflow_id", "day")
_INSERT_COLUMNS: Final = ", ".join((*_KEY, *_VALUE_COLUMNS))
_UPDATE_SET: Final = ", ".join(f"{c} = excluded.{c}" for c in _VALUE_COLUMNS)

_REFRESH_DIRTY: Final = sa.text(f"""
WITH claimed AS (
    DELETE FROM execution_summary_dirty RETURNING organization_id, workflow_id, day
), grp AS (
    SELECT DISTINCT organization_id, workflow_id, day FROM claimed
), fresh AS (
    -- One range scan of the listing index (uuid_hash(organization_id), created_at) per
    -- stale group, whatever the planner thinks of the marker table's size.
    SELECT g.organization_id, g.workflow_id, g.day, a.*
    FROM grp g
    CROSS JOIN LATERAL (
        SELECT count(*) AS group_rows,
{aggregates_sql("e")}
        FROM execution_metadata e
        WHERE uuid_hash(e.organization_id) = uuid_hash(g.organization_id)
          AND e.organization_id = g.organization_id
          AND e.created_at >= (g.day::timestamp AT TIME ZONE 'UTC')
          AND e.created_at < ((g.day + 1)::timestamp AT TIME ZONE 'UTC')
          AND e.workflow_id = g.workflow_id
    ) a
    WHERE a.group_rows > 0
), emptied AS (
    DELETE FROM execution_daily_summary s USING grp g
    WHERE s.organization_id = g.organization_id AND s.workflow_id = g.workflow_id
      AND s.day = g.day
      AND NOT EXISTS (
          SELECT 1 FROM fresh f WHERE f.organization_id = g.organization_id
             AND f.workflow_id = g.workflow_id AND f.day = g.day)
    RETURNING 1
), written AS (
    INSERT INTO execution_daily_summary ({_INSERT_COLUMNS})
    SELECT {_INSERT_COLUMNS} FROM fresh
    ON CONFLICT (organization_id, workflow_id, day) DO UPDATE SET {_UPDATE_SET}
    RETURNING 1
)
SELECT (SELECT count(*) FROM grp), (SELECT count(*) FROM written), (SELECT count(*) FROM emptied)
""")

_REBUILD_ABOVE: Final = 2_000
_dirty: sa.Table = m.ExecutionSummaryDirty.__table__  # type: ignore[assignment]
_rollup: sa.Table = m.ExecutionDailySummary.__table__  # type: ignore[assignment]

_REBUILD: Final = (
    sa.text("DELETE FROM execution_summary_dirty"),
    sa.text("DELETE FROM execution_daily_summary"),
    sa.text(f"""
INSERT INTO execution_daily_summary ({_INSERT_COLUMNS})
SELECT e.organization_id, e.workflow_id, (e.created_at AT TIME ZONE 'UTC')::date,
{aggregates_sql("e")}
FROM execution_metadata e
GROUP BY 1, 2, 3
"""),
)


async def refresh_summaries(
    session: AsyncSession, *, full: bool = False, clock: Clock = SYSTEM_CLOCK
) -> SummaryRefresh:
    """Recompute the stale summary groups (``full``: every group) and record when (``clock``).

    Runs in the caller's transaction (commit it to publish). On PostgreSQL only one
    refresh runs at a time: if another holds the advisory lock this returns at once
    with ``skipped``. On SQLite there is nothing to refresh (summaries are live).
    """
    if session.get_bind().dialect.name != "postgresql":
        return SummaryRefresh(skipped=True, reason="SQLite answers summaries from a live query")
    started = time.perf_counter()
    if not await session.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(REFRESH_LOCK_KEY))):
        return SummaryRefresh(skipped=True, reason="another refresh is running")
    if not full:
        # Many stale groups (a first refresh, a bulk backfill): one pass over the table
        # beats one index range scan per group.
        stale = int(await session.scalar(sa.select(sa.func.count()).select_from(_dirty)) or 0)
        if stale > _REBUILD_ABOVE:
            known = await session.scalar(sa.select(sa.func.count()).select_from(_rollup))
            full = stale > int(known or 0) // 4
    if full:
        for stmt in _REBUILD[:-1]:
            await session.execute(stmt)
        result: Any = await session.execute(_REBUILD[-1])
        written = int(result.rowcount or 0)
        groups, removed = written, 0
    else:
        groups, written, removed = (await session.execute(_REFRESH_DIRTY)).one()
    seconds = time.perf_counter() - started
    details = {"full": full, "groups": int(groups), "seconds": round(seconds, 3)}
    await record_state(session, SUMMARY_STATE, details, at=clock.now())
    return SummaryRefresh(
        full=full,
        groups=int(groups),
        rows_written=int(written),
        rows_removed=int(removed),
        seconds=seconds,
    )


def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


async def read_summary(
    session: AsyncSession,
    organization_id: uuid.UUID,
    first_day: dt.date,
    last_day: dt.date,
    *,
    workflow_id: uuid.UUID | None = None,
    live: bool = False,
    clock: Clock = SYSTEM_CLOCK,
) -> ExecutionSummary:
    """The summary of ``first_day``..``last_day`` (UTC, inclusive) for one organization.

    A ``live`` summary is as fresh as the clock's now; a rollup as its last refresh.
    """
    refreshed: dt.datetime | None
    if live:
        days = await _live_days(session, organization_id, first_day, last_day, workflow_id)
        refreshed = clock.now()
    else:
        days = await _rollup_days(session, organization_id, first_day, last_day, workflow_id)
        state = await read_state(session, SUMMARY_STATE)
        refreshed = None if state is None else state[0]
    totals = _sum_counts(day.counts for day in days)
    return ExecutionSummary(
        organization_id=organization_id,
        first_day=first_day,
        last_day=last_day,
        days=days,
        totals=totals,
        refreshed_at=None if refreshed is None else as_utc(refreshed),
        live=live,
    )


def _sum_counts(counts: Iterable[StatusCounts]) -> StatusCounts:
    total: dict[str, int] = defaultdict(int)
    for count in counts:
        for name in _COUNT_COLUMNS.values():
            total[name] += getattr(count, name)
    return StatusCounts(**total)


def _ordered(days: list[DailySummary]) -> list[DailySummary]:
    return sorted(
        days, key=lambda d: (-d.day.toordinal(), d.workflow_name or "", str(d.workflow_id))
    )


@functools.lru_cache(maxsize=2)
def rollup_statement(by_workflow: bool) -> sa.Select[Any]:
    """The rollup rows of ``organization_id`` from ``first_day`` to ``last_day`` (parameters),
    of ``workflow_id`` too when ``by_workflow``, with the workflow's current name."""
    s: sa.Table = m.ExecutionDailySummary.__table__  # type: ignore[assignment]
    wf: sa.Table = m.Workflow.__table__  # type: ignore[assignment]
    stmt = (
        sa.select(s, wf.c.name.label("workflow_name"))
        .select_from(
            s.outerjoin(
                wf, sa.and_(wf.c.organization_id == s.c.organization_id, wf.c.id == s.c.workflow_id)
            )
        )
        .where(
            s.c.organization_id == sa.bindparam("organization_id"),
            s.c.day >= sa.bindparam("first_day"),
            s.c.day <= sa.bindparam("last_day"),
        )
    )
    if by_workflow:
        stmt = stmt.where(s.c.workflow_id == sa.bindparam("workflow_id"))
    return stmt


async def _rollup_days(
    session: AsyncSession,
    organization_id: uuid.UUID,
    first_day: dt.date,
    last_day: dt.date,
    workflow_id: uuid.UUID | None,
) -> list[DailySummary]:
    params: dict[str, Any] = {
        "organization_id": organization_id,
        "first_day": first_day,
        "last_day": last_day,
    }
    if workflow_id is not None:
        params["workflow_id"] = workflow_id
    rows = await session.execute(rollup_statement(workflow_id is not None), params)
    days = []
    for row in rows.mappings():
        counts = StatusCounts(**{c: row[c] for c in _COUNT_COLUMNS.values()})
        days.append(
            DailySummary(
                day=row["day"],
                workflow_id=row["workflow_id"],
                workflow_name=row["workflow_name"],
                counts=counts,
                timed_runs=row["timed_runs"],
                duration_p50_ms=row["duration_p50_ms"],
                duration_p95_ms=row["duration_p95_ms"],
                duration_avg_ms=_average(row["duration_total_ms"], row["timed_runs"]),
            )
        )
    return _ordered(days)


def _average(total: int, count: int) -> int | None:
    return None if not count else math.floor(total / count + 0.5)


async def _live_days(
    session: AsyncSession,
    organization_id: uuid.UUID,
    first_day: dt.date,
    last_day: dt.date,
    workflow_id: uuid.UUID | None,
) -> list[DailySummary]:
    e = m.ExecutionMetadata
    wf = m.Workflow
    stmt = (
        sa.select(e.workflow_id, wf.name, e.created_at, e.status, e.duration_ms)
        .outerjoin(wf, sa.and_(wf.organization_id == e.organization_id, wf.id == e.workflow_id))
        .where(
            e.organization_id == organization_id,
            e.created_at >= _day_start(first_day),
            e.created_at < _day_start(last_day + dt.timedelta(days=1)),
        )
    )
    if workflow_id is not None:
        stmt = stmt.where(e.workflow_id == workflow_id)
    if session.get_bind().dialect.name == "postgresql":  # the listing index's key
        stmt = stmt.where(on_listing_key(e.organization_id, sa.literal(organization_id)))
    groups: dict[tuple[dt.date, uuid.UUID], dict[str, Any]] = {}
    for wf_id, name, created_at, status, duration in (await session.execute(stmt)).all():
        key = (as_utc(created_at).date(), wf_id)
        group = groups.setdefault(key, {"name": name, "counts": defaultdict(int), "durations": []})
        group["counts"][_COUNT_COLUMNS[ExecutionStatus(status)]] += 1
        if status in FINISHED and duration is not None:
            group["durations"].append(int(duration))
    days = []
    for (day, wf_id), group in groups.items():
        durations = sorted(group["durations"])
        days.append(
            DailySummary(
                day=day,
                workflow_id=wf_id,
                workflow_name=group["name"],
                counts=StatusCounts(**group["counts"]),
                timed_runs=len(durations),
                duration_p50_ms=percentile(durations, 0.5),
                duration_p95_ms=percentile(durations, 0.95),
                duration_avg_ms=_average(sum(durations), len(durations)),
            )
        )
    return _ordered(days)
