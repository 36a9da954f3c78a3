"""The reconciler's grace, partition maintenance and dashboard days follow the store's clock.

- reconcile: a blob no row names is an orphan once it is ``grace`` old by the clock (the
  time it was written is the clock's too); a microsecond younger it is left alone;
- maintenance: "this month and the next N" are the clock's months;
- summaries: "the last N days" end on the clock's UTC day; a live summary is as fresh
  as the clock's now, a rollup as the clock's time of its refresh.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from execstore.archival import reconcile
from execstore.clock import ManualClock
from execstore.logs.maintenance import maintain_log_partitions
from execstore.metadata import refresh_summaries
from execstore.results import ResultArchives
from execstore.results.format import result_archive_key
from execstore.schema.partitions import log_partitions
from support.timeline import new_job, new_org

from .conftest import DIRECTIONS, pinned

TICK = dt.timedelta(microseconds=1)
GRACE = dt.timedelta(hours=6)


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_an_orphan_blob_is_young_until_grace_has_passed_by_the_clock(
    open_store: Any, direction: str
) -> None:
    written = pinned(
        direction,
        dt.datetime(2044, 4, 4, 4, 4, tzinfo=dt.UTC),
        dt.datetime(2014, 4, 4, 4, 4, tzinfo=dt.UTC),
    )
    clock = ManualClock(written)
    async with open_store(clock) as store:
        org, _ = await new_org(store)
        # A result blob whose row never committed (a crash between upload and commit).
        key = result_archive_key(org, uuid.uuid4(), written, store.archives.codec)
        await store.archives.write_document(key, {"steps": []})

        async def check() -> Any:
            [report] = await reconcile(
                store.sessions,
                store.archives,
                [ResultArchives()],
                organization_id=org,
                grace=GRACE,
                repair=True,
                clock=clock,
            )
            return report

        clock.set(written + GRACE - TICK)
        young = await check()
        assert (young.details["young"], young.details["orphans"], young.counts["deleted"]) == (
            [key],
            [],
            0,
        )
        assert await store.blobs.exists(key)
        clock.advance(TICK)
        old = await check()
        assert (old.details["young"], old.details["orphans"], old.counts["deleted"]) == (
            [],
            [key],
            1,
        )
        assert not await store.blobs.exists(key)


def _month(year: int, month: int) -> str:
    return f"execution_log_partitioned_p{year}_{month:02d}"


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_partitions_are_made_for_the_clocks_months(open_store: Any, direction: str) -> None:
    year = 2047 if direction == "ahead" else 2007
    last_moment = pinned(
        direction,
        dt.datetime(2047, 6, 30, 23, 59, 59, 999_999, tzinfo=dt.UTC),
        dt.datetime(2007, 6, 30, 23, 59, 59, 999_999, tzinfo=dt.UTC),
    )
    clock = ManualClock(last_moment)
    async with open_store(clock) as store:
        report = await maintain_log_partitions(store.engine, months_ahead=2, clock=clock)
        assert report.details["created"] == [_month(year, 6), _month(year, 7), _month(year, 8)]
        clock.advance(TICK)  # July: one more month comes into view
        report = await maintain_log_partitions(store.engine, months_ahead=2, clock=clock)
        assert report.details["created"] == [_month(year, 9)]
        again = await maintain_log_partitions(store.engine, months_ahead=2, clock=clock)
        assert again.details["created"] == []
        async with store.engine.connect() as conn:
            names = {p.name for p in await conn.run_sync(log_partitions)}
        assert _month(year, 10) not in names
        assert {_month(year, m) for m in (6, 7, 8, 9)} <= names


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_the_summary_days_end_on_the_clocks_day(open_store: Any, direction: str) -> None:
    late = pinned(
        direction,
        dt.datetime(2045, 5, 10, 23, 59, 59, 999_999, tzinfo=dt.UTC),
        dt.datetime(2015, 5, 10, 23, 59, 59, 999_999, tzinfo=dt.UTC),
    )
    clock = ManualClock(late)
    async with open_store(clock) as store:
        org, workflow = await new_org(store)
        job = await new_job(store, org, workflow)
        async with store.unit(org) as uow:
            await uow.metadata.create(job)
            await uow.metadata.start(job)
            await uow.metadata.complete(job)
        postgres = store.engine.dialect.name == "postgresql"

        async def completed(days: int, *, live: bool = True) -> tuple[Any, int]:
            async with store.unit(org) as uow:
                summary = await uow.metadata.summary(days=days, live=live)
            return summary, summary.totals.completed

        today, counted = await completed(1)
        assert (today.first_day, today.last_day, counted) == (late.date(), late.date(), 1)
        assert today.refreshed_at == late
        clock.advance(TICK)  # midnight: a new UTC day
        tomorrow, counted = await completed(1)
        assert (tomorrow.last_day, counted) == (late.date() + dt.timedelta(days=1), 0)
        assert (await completed(2))[1] == 1
        if postgres:
            clock.advance(minutes=5)
            async with store.sessions() as session, session.begin():
                await refresh_summaries(session, clock=clock)
            rollup, counted = await completed(2, live=False)
            assert (rollup.refreshed_at, counted) == (clock.now(), 1)
