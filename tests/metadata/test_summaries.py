"""Summaries: the same figures live (SQLite, PostgreSQL) and from the rollup (PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.config import load_settings
from execstore.errors import InvalidArgument
from execstore.metadata import refresh_summaries
from execstore.metadata.summaries import REFRESH_LOCK_KEY, percentile
from execstore.migrations.runner import migrate
from execstore.schema import models as m
from execstore.store import ExecStore

from .conftest import T0, World, make_world, new_job

DAY1 = T0.date()


async def _run(
    store: Any, world: World, job: uuid.UUID, seconds: float, *, fail: bool = False
) -> None:
    async with store.unit(world.org) as uow:
        await uow.metadata.start(job, started_at=T0)
        end = T0 + dt.timedelta(seconds=seconds)
        if fail:
            await uow.metadata.fail(job, "E", "m", completed_at=end)
        else:
            await uow.metadata.complete(job, completed_at=end)


async def _populate(store: Any, world: World) -> None:
    """Day 1: wf1 five runs (4 done, 1 failed) + 1 pending; wf2 one running. Day 2: wf1 one."""
    day1 = [await new_job(store, world, created_at=T0 + dt.timedelta(minutes=i)) for i in range(6)]
    for job, secs in zip(day1[:4], (10, 20, 30, 100), strict=True):
        await _run(store, world, job, secs)
    await _run(store, world, day1[4], 5, fail=True)
    running = await new_job(store, world, created_at=T0, workflow=world.other_workflow)
    async with store.unit(world.org) as uow:
        await uow.metadata.start(running, started_at=T0)
    late = await new_job(store, world, created_at=T0 + dt.timedelta(days=1, hours=3))
    await _run(store, world, late, 60)


def test_percentile_matches_postgres_percentile_cont() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7], 0.95) == 7
    assert percentile([10, 20, 30, 100], 0.5) == 25
    assert percentile([5, 10, 20, 30, 100], 0.95) == 86  # 30 + 70 * 0.8
    assert percentile([1, 2], 0.5) == 2  # 1.5 rounds half up


async def test_live_summary_counts_and_percentiles(store: Any, world: World) -> None:
    await _populate(store, world)
    async with store.unit(world.org) as uow:
        summary = await uow.metadata.summary(
            first_day=DAY1, last_day=DAY1 + dt.timedelta(days=1), live=True
        )
    assert summary.live
    assert summary.refreshed_at is not None
    by_key = {(d.day, d.workflow_name): d for d in summary.days}
    assert [(d.day, d.workflow_name) for d in summary.days] == [
        (DAY1 + dt.timedelta(days=1), "Eligibility check"),
        (DAY1, "Claim status"),
        (DAY1, "Eligibility check"),
    ]
    wf1 = by_key[(DAY1, "Eligibility check")]
    assert (wf1.counts.completed, wf1.counts.failed, wf1.counts.pending) == (4, 1, 1)
    assert wf1.timed_runs == 5
    assert (wf1.duration_p50_ms, wf1.duration_p95_ms, wf1.duration_avg_ms) == (
        20_000,
        86_000,
        33_000,
    )
    assert by_key[(DAY1, "Claim status")].counts.running == 1
    assert by_key[(DAY1, "Claim status")].duration_p50_ms is None
    assert summary.totals.total == 8
    async with store.unit(world.org) as uow:
        one_wf = await uow.metadata.summary(
            first_day=DAY1, last_day=DAY1, workflow_id=world.other_workflow, live=True
        )
    assert [d.workflow_id for d in one_wf.days] == [world.other_workflow]


@pytest.fixture
async def own_store(backend: str, fresh_db_url: str, tmp_path: Path) -> Any:
    """A store on a database of its own: the rollup and its markers hold this test's rows only."""
    await migrate(fresh_db_url)
    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path / 'blobs'}")
    async with ExecStore.open(settings) as opened:
        yield opened


async def _refresh(store: Any, *, full: bool = False) -> Any:
    async with store.sessions() as session, session.begin():
        return await refresh_summaries(session, full=full)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_rollup_equals_live_and_refreshes_only_what_changed(own_store: Any) -> None:
    store = own_store
    world = await make_world(store)
    other = await make_world(store)
    async with store.unit(world.org) as uow:
        never = await uow.metadata.summary(first_day=DAY1, last_day=DAY1)
    assert never.refreshed_at is None
    assert never.days == []
    assert not never.live

    await _populate(store, world)
    await new_job(store, other, created_at=T0)
    first = await _refresh(store)
    assert (first.groups, first.rows_written, first.skipped) == (4, 4, False)

    days = (DAY1, DAY1 + dt.timedelta(days=1))
    async with store.unit(world.org) as uow:
        rolled = await uow.metadata.summary(first_day=days[0], last_day=days[1])
        live = await uow.metadata.summary(first_day=days[0], last_day=days[1], live=True)
    assert rolled.days == live.days
    assert rolled.totals == live.totals
    assert rolled.refreshed_at is not None
    assert not rolled.live

    # Progress updates do not make a summary stale; a status change does.
    job = await new_job(store, world, created_at=T0 + dt.timedelta(days=1))
    await _refresh(store)
    async with store.unit(world.org) as uow:
        await uow.metadata.start(job, started_at=T0)
        for step in range(5):
            await uow.metadata.progress(job, completed_steps=step, total_steps=12)
    async with store.sessions() as session:
        assert (
            await session.scalar(sa.select(sa.func.count()).select_from(m.ExecutionSummaryDirty))
            == 1
        )
    async with store.unit(world.org) as uow:
        stale = await uow.metadata.summary(first_day=days[1], last_day=days[1])
    assert stale.days[0].counts.pending == 1  # not refreshed yet: still the old figures
    second = await _refresh(store)
    assert second.groups == 1
    async with store.unit(world.org) as uow:
        fresh = await uow.metadata.summary(first_day=days[1], last_day=days[1])
    assert (fresh.days[0].counts.pending, fresh.days[0].counts.running) == (0, 1)
    assert fresh.refreshed_at is not None
    assert rolled.refreshed_at is not None
    assert fresh.refreshed_at > rolled.refreshed_at

    # A job deleted (its metadata cascades) leaves the rollup after the next refresh.
    async with store.unit(world.org) as uow:
        await uow.jobs.delete(job)
    await _refresh(store)
    async with store.unit(world.org) as uow:
        after = await uow.metadata.summary(first_day=days[1], last_day=days[1])
    assert after.totals.total == 1

    # A full rebuild gives the same figures as the incremental refreshes.
    rebuilt = await _refresh(store, full=True)
    assert rebuilt.full
    assert rebuilt.groups == 4
    async with store.unit(world.org) as uow:
        again = await uow.metadata.summary(first_day=days[0], last_day=days[1])
        live = await uow.metadata.summary(first_day=days[0], last_day=days[1], live=True)
    assert again.days == live.days


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_one_refresh_at_a_time(own_store: Any) -> None:
    store = own_store
    world = await make_world(store)
    await new_job(store, world)
    async with store.sessions() as holder, holder.begin():
        await holder.execute(sa.select(sa.func.pg_advisory_xact_lock(REFRESH_LOCK_KEY)))
        blocked = await asyncio.wait_for(_refresh(store), timeout=10)
    assert blocked.skipped
    assert blocked.reason == "another refresh is running"
    async with store.sessions() as session:
        assert (
            await session.scalar(sa.select(sa.func.count()).select_from(m.ExecutionSummaryDirty))
            == 1
        )
    done = await _refresh(store)
    assert not done.skipped
    assert done.groups == 1


@pytest.mark.sqlite
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sqlite_answers_live_and_has_nothing_to_refresh(own_store: Any) -> None:
    store = own_store
    world = await make_world(store)
    await new_job(store, world)
    report = await _refresh(store)
    assert report.skipped
    assert "SQLite" in (report.reason or "")
    async with store.unit(world.org) as uow:
        summary = await uow.metadata.summary(first_day=DAY1, last_day=DAY1)
    assert summary.live
    assert summary.totals.pending == 1


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_many_stale_groups_take_one_pass_with_the_same_figures(own_store: Any) -> None:
    store = own_store
    world = await make_world(store)
    days = 2_100  # one group per day: more stale groups than the per-group path is for
    jobs = [uuid.uuid4() for _ in range(days)]
    async with store.unit(world.org) as uow:
        await uow.session.execute(
            sa.insert(m.Job),
            [
                {
                    "id": job,
                    "organization_id": world.org,
                    "workflow_id": world.workflow,
                    "credential_ids": [],
                    "created_at": T0 - dt.timedelta(days=i),
                }
                for i, job in enumerate(jobs)
            ],
        )
        await uow.session.execute(
            sa.insert(m.ExecutionMetadata),
            [
                {
                    "job_id": job,
                    "organization_id": world.org,
                    "workflow_id": world.workflow,
                    "created_at": T0 - dt.timedelta(days=i),
                    "started_at": T0 - dt.timedelta(days=i),
                    "completed_at": T0 - dt.timedelta(days=i) + dt.timedelta(seconds=i % 97),
                    "duration_ms": (i % 97) * 1000,
                    "status": 3,
                }
                for i, job in enumerate(jobs)
            ],
        )
    report = await _refresh(store)
    assert report.full
    assert report.groups == days
    first, last = (T0 - dt.timedelta(days=days)).date(), DAY1
    async with store.unit(world.org) as uow:
        rolled = await uow.metadata.summary(first_day=first, last_day=last)
        live = await uow.metadata.summary(first_day=first, last_day=last, live=True)
    assert rolled.days == live.days
    assert rolled.totals.completed == days


async def test_an_empty_or_reversed_range_is_invalid_argument(store: Any, world: World) -> None:
    async with store.unit(world.org) as uow:
        for days in (0, -3):
            with pytest.raises(InvalidArgument, match="days must be a positive integer"):
                await uow.metadata.summary(days=days)
        with pytest.raises(InvalidArgument, match="is after last_day"):
            await uow.metadata.summary(first_day=DAY1, last_day=DAY1 - dt.timedelta(days=1))
        one_day = await uow.metadata.summary(days=1, live=True)
    assert one_day.first_day == one_day.last_day
