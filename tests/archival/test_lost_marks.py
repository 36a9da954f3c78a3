"""A pointer row the reconciler marked lost is honoured until a repair run clears it.

README: a log chunk (or a result) the reconciler marked lost raises ArchiveMissing at
once, without asking blob storage; deleting a job leaves a lost chunk alone (its lines
cannot be read, so they can be neither kept nor removed). So with the blob put back
but the mark still there, reads still fail fast; a repair run finds the blob, clears
the mark, and reads work again.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.archival import reconcile
from execstore.clock import ManualClock
from execstore.errors import ArchiveMissing
from execstore.logs import LogArchives, NewLogEntry, archive_logs
from execstore.results import ResultArchives
from execstore.results.format import result_archive_key
from execstore.schema import models as m
from support.timeline import new_job, new_org, utc


async def _repair(store: Any, org: uuid.UUID, clock: ManualClock) -> Any:
    return await reconcile(
        store.sessions,
        store.archives,
        [LogArchives(), ResultArchives()],
        organization_id=org,
        repair=True,
        clock=clock,
    )


async def _chunk(store: Any, org: uuid.UUID) -> m.ExecutionLogArchive:
    async with store.sessions() as session:
        [chunk] = (
            await session.scalars(
                sa.select(m.ExecutionLogArchive).where(m.ExecutionLogArchive.organization_id == org)
            )
        ).all()
    return chunk


async def test_a_lost_mark_holds_until_a_repair_run_clears_it(store_at: Any) -> None:
    month = utc(2039, 8, 1)
    clock = ManualClock(month)
    async with store_at(clock) as store:
        org, workflow = await new_org(store)
        job = await new_job(store, org, workflow)
        async with store.unit(org) as uow:
            await uow.logs.append(job, [NewLogEntry("old", timestamp=month)])
            await uow.results.save(job, {"success": True, "stepResults": []})
        clock.set(utc(2039, 10, 1))
        await archive_logs(store.engine, store.sessions, store.archives, hot_days=30, clock=clock)
        chunk = await _chunk(store, org)
        result_key = result_archive_key(org, job, month, store.archives.codec)
        saved = {key: await store.blobs.get(key) for key in (chunk.blob_key, result_key)}
        for key in saved:
            await store.blobs.delete(key)
        store.archives.cache.clear()
        marked = await _repair(store, org, clock)
        assert sorted(k for r in marked for k in r.details["lost"]) == sorted(saved)
        assert (await _chunk(store, org)).lost
        for key, payload in saved.items():
            await store.blobs.put(key, payload)  # restored from a backup; not reconciled yet
        async with store.unit(org) as uow:
            with pytest.raises(ArchiveMissing):
                await uow.logs.for_job(job)
            with pytest.raises(ArchiveMissing):
                await uow.logs.tail(job, 1)
            with pytest.raises(ArchiveMissing):
                await uow.results.detail(job)
            summary = await uow.results.find(job)
        assert summary is not None
        assert summary.archive_missing
        restored = await _repair(store, org, clock)
        assert sorted(k for r in restored for k in r.details["restored"]) == sorted(saved)
        async with store.unit(org) as uow:
            assert [e.message for e in (await uow.logs.for_job(job)).items] == ["old"]
            detail = await uow.results.detail(job)
        assert detail.output == {"success": True, "stepResults": []}


async def test_deleting_a_job_leaves_a_lost_chunk_alone(store_at: Any) -> None:
    month = utc(2039, 11, 1)
    clock = ManualClock(month)
    async with store_at(clock) as store:
        org, workflow = await new_org(store)
        gone, kept = await new_job(store, org, workflow), await new_job(store, org, workflow)
        async with store.unit(org) as uow:
            for job in (gone, kept):
                await uow.logs.append(
                    job, [NewLogEntry("old", timestamp=month + dt.timedelta(days=3))]
                )
        clock.set(utc(2040, 1, 1))
        await archive_logs(store.engine, store.sessions, store.archives, hot_days=30, clock=clock)
        chunk = await _chunk(store, org)
        await store.blobs.delete(chunk.blob_key)
        await _repair(store, org, clock)
        async with store.unit(org) as uow:
            assert await uow.jobs.delete(gone) == []
        after = await _chunk(store, org)
        assert (after.id, after.blob_key, after.record_count, after.lost) == (
            chunk.id,
            chunk.blob_key,
            2,
            True,
        )
