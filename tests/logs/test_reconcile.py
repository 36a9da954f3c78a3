"""The reconciler on log chunks: lost blobs marked (reads fail fast), orphans vs pending."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.archival import reconcile
from execstore.errors import ArchiveMissing
from execstore.logs import LogArchives
from execstore.schema import models as m
from support.timeline import new_jobs

from .conftest import archive, lines, months_ago, read_all


async def _check(store: Any, org: uuid.UUID, **options: Any) -> Any:
    [report] = await reconcile(
        store.sessions, store.archives, [LogArchives()], organization_id=org, **options
    )
    return report


async def test_a_lost_chunk_is_marked_and_reads_fail_fast_until_restored(
    store: Any, org: uuid.UUID
) -> None:
    (job,) = await new_jobs(store, org)
    async with store.unit(org) as uow:
        await uow.logs.append(job, lines(6, start=months_ago(3)))
    await archive(store)
    async with store.sessions() as session:
        [chunk] = (
            await session.scalars(
                sa.select(m.ExecutionLogArchive).where(m.ExecutionLogArchive.organization_id == org)
            )
        ).all()
    saved = await store.blobs.get(chunk.blob_key)
    await store.archives.delete(chunk.blob_key)
    found = await _check(store, org, repair=True)
    assert found.details["lost"] == [chunk.blob_key]
    assert found.counts["marked"] == 1
    async with store.unit(org) as uow:
        with pytest.raises(ArchiveMissing):
            await uow.logs.for_job(job)
    await store.blobs.put(chunk.blob_key, saved)
    back = await _check(store, org, repair=True)
    assert back.details["restored"] == [chunk.blob_key]
    assert len(await read_all(store, org, job)) == 6


async def test_a_crashed_runs_blob_is_pending_and_a_stray_one_an_orphan(
    store: Any, org: uuid.UUID, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execstore.logs import archival

    (job,) = await new_jobs(store, org)
    async with store.unit(org) as uow:
        await uow.logs.append(job, lines(6, start=months_ago(3)))
    original = archival._upload

    async def crash(*args: Any) -> Any:
        await original(*args)
        raise RuntimeError("crash after upload")

    monkeypatch.setattr(archival, "_upload", crash)
    with pytest.raises(RuntimeError):
        await archive(store)
    monkeypatch.undo()
    stray = f"logs/{org}/2020/01/{uuid.uuid4()}/c1.ndjson.gz"
    await store.archives.store_records(stray, [{"job_id": str(uuid.uuid4()), "id": 1}])
    found = await _check(store, org, repair=True, grace=dt.timedelta(0))
    assert len(found.details["pending"]) == 1  # its first line is still hot: the rerun records it
    assert found.details["orphans"] == [stray]
    assert found.counts["deleted"] == 1
    await archive(store)
    assert not (await _check(store, org)).needs_attention
    assert len(await read_all(store, org, job)) == 6
