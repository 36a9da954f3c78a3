"""Retention: archived chunks past the organization's retention go, blob first."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.archival import reconcile
from execstore.clock import ManualClock
from execstore.logs import LogArchives
from execstore.operations import apply_retention
from execstore.schema import models as m
from support.timeline import new_jobs

from .conftest import archive, lines, months_ago, read_all


async def _archived_months(store: Any, org: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID, list[Any]]:
    older, newer = await new_jobs(store, org, 2)
    async with store.unit(org) as uow:
        await uow.logs.append(older, lines(6, start=months_ago(5)))
        await uow.logs.append(newer, lines(6, start=months_ago(3)))
    await archive(store, chunk_rows=100)
    async with store.sessions() as session:
        chunks = (
            await session.scalars(
                sa.select(m.ExecutionLogArchive)
                .where(m.ExecutionLogArchive.organization_id == org)
                .order_by(m.ExecutionLogArchive.end_date)
            )
        ).all()
    assert len(chunks) == 2
    return older, newer, list(chunks)


async def _retention(store: Any, **options: Any) -> Any:
    options.setdefault("hot_days", 30)
    days = options.pop("default_days", 365)
    return await apply_retention(store.sessions, store.archives, "logs", days=days, **options)


async def test_chunks_past_the_organizations_retention_are_deleted(
    store: Any, org: uuid.UUID
) -> None:
    older, newer, (old_chunk, new_chunk) = await _archived_months(store, org)
    async with store.unit(org) as uow:
        await uow.logs.set_retention(60)
    # A moment when only the older month is past 60 days.
    now = old_chunk.end_date + dt.timedelta(days=61)
    assert new_chunk.end_date + dt.timedelta(days=60) > now
    dry = await _retention(store, clock=ManualClock(now), dry_run=True, organization_id=org)
    assert (dry.counts["archives"], dry.counts["records"]) == (1, 6)
    assert await store.blobs.exists(old_chunk.blob_key)
    report = await _retention(store, clock=ManualClock(now), organization_id=org)
    assert (report.counts["archives"], report.counts["records"], report.set_aside) == (1, 6, [])
    assert not await store.blobs.exists(old_chunk.blob_key)
    assert await store.blobs.exists(new_chunk.blob_key)
    assert await read_all(store, org, older) == []
    assert len(await read_all(store, org, newer)) == 6
    [logs] = await reconcile(store.sessions, store.archives, [LogArchives()], organization_id=org)
    assert not logs.needs_attention


async def test_each_organization_keeps_its_own_retention(store: Any, org: uuid.UUID) -> None:
    other = uuid.uuid4()
    async with store.unit(other) as uow:
        await uow.reference.add_organization("other")
    _, _, (old_chunk, _) = await _archived_months(store, org)
    _, _, (other_old, _) = await _archived_months(store, other)
    async with store.unit(other) as uow:
        await uow.logs.set_retention(3650)
    now = old_chunk.end_date + dt.timedelta(days=366)  # past the default 365 for org
    report = await _retention(store, clock=ManualClock(now), default_days=365)
    assert not await store.blobs.exists(old_chunk.blob_key)
    assert await store.blobs.exists(other_old.blob_key)
    assert report.counts["archives"] >= 1


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_chunk_another_run_holds_is_skipped_not_waited_for(
    store: Any, org: uuid.UUID
) -> None:
    _, _, (old_chunk, new_chunk) = await _archived_months(store, org)
    now = new_chunk.end_date + dt.timedelta(days=400)  # both months are past retention
    async with store.sessions() as holder, holder.begin():
        # Another retention run has claimed the older chunk and is still deleting it.
        await holder.execute(
            sa.select(m.ExecutionLogArchive.id)
            .where(m.ExecutionLogArchive.id == old_chunk.id)
            .with_for_update()
        )
        # This run must skip that row; a run that waits for it fails here.
        report = await asyncio.wait_for(
            _retention(store, clock=ManualClock(now), organization_id=org), 5
        )
        assert (report.counts["archives"], report.set_aside) == (1, [])
        assert await store.blobs.exists(old_chunk.blob_key)
        assert not await store.blobs.exists(new_chunk.blob_key)
    again = await _retention(store, clock=ManualClock(now), organization_id=org)
    assert again.counts["archives"] == 1
    assert not await store.blobs.exists(old_chunk.blob_key)


async def test_a_crash_between_blob_and_row_is_finished_by_the_next_run(
    store: Any, org: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execstore.logs import retention

    _, _, (old_chunk, new_chunk) = await _archived_months(store, org)
    now = new_chunk.end_date + dt.timedelta(days=400)

    async def crash(*args: Any) -> None:
        raise RuntimeError("crash after the blob went")

    monkeypatch.setattr(retention, "_delete_pointer", crash)
    with pytest.raises(RuntimeError, match="crash"):
        await _retention(store, clock=ManualClock(now), organization_id=org)
    assert not await store.blobs.exists(old_chunk.blob_key)  # blob first
    monkeypatch.undo()
    report = await _retention(store, clock=ManualClock(now), organization_id=org)
    assert report.counts["archives"] == 2
    async with store.sessions() as session:
        left = await session.scalar(
            sa.select(sa.func.count())
            .select_from(m.ExecutionLogArchive)
            .where(m.ExecutionLogArchive.organization_id == org)
        )
    assert left == 0


async def test_a_stored_retention_below_the_hot_window_is_set_aside(
    store: Any, org: uuid.UUID
) -> None:
    _, _, (old_chunk, _) = await _archived_months(store, org)
    async with store.unit(org) as uow:
        await uow.logs.set_retention(40)
    report = await _retention(
        store,
        clock=ManualClock(old_chunk.end_date + dt.timedelta(days=400)),
        hot_days=45,
        organization_id=org,
    )
    assert report.needs_attention
    assert report.set_aside[0].key == f"organization {org}"
    assert "shorter than the hot window of 45 days" in report.set_aside[0].reason
    assert await store.blobs.exists(old_chunk.blob_key)
