"""Log archival and retention decide by the store's clock, at their exact boundaries.

The hot window ends at ``clock - hot_days``: on SQLite a line older than that moves, on
PostgreSQL a month moves once its partition ends at or before it. The lines sit at a month
boundary ``M``, so one cut-off serves both: with the clock at ``M + hot_days - 1 µs`` the
line at ``M - 1 µs`` is at the cut-off and stays (and so does the one at ``M``); a
microsecond later it is below it and moves, while the line at ``M`` is now at the cut-off
and stays. Retention deletes a chunk whose newest line is older than ``clock -
retention``: kept at exactly that age, deleted a microsecond later.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.clock import ManualClock
from execstore.logs import NewLogEntry, archive_logs
from execstore.operations import apply_retention
from execstore.schema import models as m
from support.timeline import new_job, new_org

from .conftest import DIRECTIONS, pinned

HOT_DAYS = 30
RETENTION_DAYS = 365
TICK = dt.timedelta(microseconds=1)


async def _hot_messages(store: Any, job: uuid.UUID) -> list[str]:
    async with store.sessions() as session:
        rows = await session.scalars(
            sa.select(m.ExecutionLogEntry.message)
            .where(m.ExecutionLogEntry.job_id == job)
            .order_by(m.ExecutionLogEntry.timestamp)
        )
        return list(rows.all())


async def _chunks(store: Any, org: uuid.UUID) -> list[Any]:
    async with store.sessions() as session:
        rows = await session.scalars(
            sa.select(m.ExecutionLogArchive).where(m.ExecutionLogArchive.organization_id == org)
        )
        return list(rows.all())


async def _archive(store: Any, clock: ManualClock) -> Any:
    return await archive_logs(
        store.engine, store.sessions, store.archives, hot_days=HOT_DAYS, clock=clock
    )


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_archival_and_retention_follow_the_clock(open_store: Any, direction: str) -> None:
    month = pinned(
        direction,
        dt.datetime(2042, 3, 1, tzinfo=dt.UTC),
        dt.datetime(2012, 3, 1, tzinfo=dt.UTC),
    )
    clock = ManualClock(month - dt.timedelta(days=5))
    async with open_store(clock) as store:
        org, workflow = await new_org(store)
        job = await new_job(store, org, workflow)
        async with store.unit(org) as uow:
            await uow.logs.append(
                job,
                [
                    NewLogEntry("below", timestamp=month - 2 * TICK),
                    NewLogEntry("last of the month", timestamp=month - TICK),
                    NewLogEntry("first of the next", timestamp=month),
                    NewLogEntry("above", timestamp=month + TICK),
                ],
            )
        everything = ["below", "last of the month", "first of the next", "above"]

        # The cut-off is the last line of the month: it and everything after stay hot.
        clock.set(month + dt.timedelta(days=HOT_DAYS) - TICK)
        if store.engine.dialect.name == "sqlite":
            await _archive(store, clock)
            assert await _hot_messages(store, job) == everything[1:]
        else:
            await _archive(store, clock)  # the month's partition ends after the cut-off
            assert await _hot_messages(store, job) == everything

        # One microsecond later the whole month is below the cut-off; the next month stays.
        clock.advance(TICK)
        await _archive(store, clock)
        assert await _hot_messages(store, job) == everything[2:]
        async with store.unit(org) as uow:
            page = await uow.logs.for_job(job)
        assert [e.message for e in page.items] == everything
        # SQLite moved "below" on its own in the first run: a chunk of its own, older.
        chunks = await _chunks(store, org)
        ends = sorted(c.end_date.replace(tzinfo=dt.UTC) for c in chunks)
        newest = month - TICK
        assert ends == ([month - 2 * TICK] if len(chunks) == 2 else []) + [newest]

        # Retention: kept at exactly RETENTION_DAYS old, gone one microsecond later.
        clock.set(newest + dt.timedelta(days=RETENTION_DAYS))
        await apply_retention(
            store.sessions,
            store.archives,
            "logs",
            days=RETENTION_DAYS,
            hot_days=HOT_DAYS,
            organization_id=org,
            clock=clock,
        )
        [kept] = await _chunks(store, org)
        assert kept.end_date.replace(tzinfo=dt.UTC) == newest
        clock.advance(TICK)
        gone = await apply_retention(
            store.sessions,
            store.archives,
            "logs",
            days=RETENTION_DAYS,
            hot_days=HOT_DAYS,
            organization_id=org,
            clock=clock,
        )
        assert (gone.counts["archives"], gone.counts["records"]) == (
            1,
            1 if len(chunks) == 2 else 2,
        )
        assert await _chunks(store, org) == []
        assert not await store.blobs.exists(kept.blob_key)


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_an_appended_line_without_a_time_is_stamped_by_the_clock(
    open_store: Any, direction: str
) -> None:
    now = pinned(
        direction,
        dt.datetime(2042, 8, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
        dt.datetime(2012, 8, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC),
    )
    clock = ManualClock(now)
    async with open_store(clock) as store:
        org, workflow = await new_org(store)
        job = await new_job(store, org, workflow)
        async with store.unit(org) as uow:
            await uow.logs.append(job, [NewLogEntry("one"), {"message": "two"}])
        clock.advance(TICK)  # the next month: a partition of its own on PostgreSQL
        async with store.unit(org) as uow:
            await uow.logs.append(job, [NewLogEntry("three")])
            entries = (await uow.logs.for_job(job)).items
        assert [(e.message, e.timestamp) for e in entries] == [
            ("one", now),
            ("two", now),
            ("three", now + TICK),
        ]
