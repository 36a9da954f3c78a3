"""Job deletion without orphans, and the reconciler in both directions, on both backends."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.errors import ArchiveMissing, NotFound
from execstore.results.format import result_archive_key
from execstore.schema import models as m
from support.timeline import new_jobs

from .conftest import (
    archive_key,
    make_output,
    put_result_document,
    reconcile,
    result_blobs,
    results_of,
)

NO_GRACE = dt.timedelta(0)


async def saved_jobs(store: Any, org: uuid.UUID, count: int) -> list[uuid.UUID]:
    ids = await new_jobs(store, org, count)
    async with store.unit(org) as uow:
        for job in ids:
            await results_of(uow).save(job, make_output(org, job))
    return ids


async def key_of(store: Any, job: uuid.UUID) -> str:
    return await archive_key(store, job)


async def test_delete_job_removes_rows_and_blob_after_commit(store: Any, org: uuid.UUID) -> None:
    keep, gone = await saved_jobs(store, org, 2)
    gone_key = await key_of(store, gone)
    async with store.unit(org) as uow:
        assert await uow.jobs.delete(gone) == [gone_key]
        assert gone_key in await result_blobs(store)  # not before the commit
    assert await result_blobs(store) == [await key_of(store, keep)]
    async with store.sessions() as session:
        shots = await session.scalar(
            sa.select(sa.func.count()).where(m.ExecutionScreenshot.job_id == gone)
        )
        archive = await session.get(m.JobResultArchive, gone)
    assert shots == 0
    assert archive is None
    assert not (
        await reconcile(store.sessions, store.archives, organization_id=org, grace=NO_GRACE)
    ).needs_attention


async def test_rolled_back_delete_keeps_the_blob(store: Any, org: uuid.UUID) -> None:
    (job,) = await saved_jobs(store, org, 1)

    async def delete_then_fail() -> None:
        async with store.unit(org) as uow:
            await uow.jobs.delete(job)
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await delete_then_fail()
    async with store.unit(org) as uow:
        detail = await uow.results.detail(job)
    assert detail.output["durationMs"] == 90500


async def test_lost_blob_is_reported_marked_and_restored(store: Any, org: uuid.UUID) -> None:
    (job,) = await saved_jobs(store, org, 1)
    key = await key_of(store, job)
    stored = await store.blobs.get(key)
    await store.blobs.delete(key)
    store.archives.cache.clear()

    dry = await reconcile(store.sessions, store.archives, organization_id=org, grace=NO_GRACE)
    assert key in dry.details["lost"]
    assert dry.counts["marked"] == 0
    fixed = await reconcile(
        store.sessions, store.archives, organization_id=org, repair=True, grace=NO_GRACE
    )
    assert key in fixed.details["lost"]
    assert fixed.counts["marked"] >= 1
    async with store.unit(org) as uow:
        summary = await uow.results.find(job)
        with pytest.raises(ArchiveMissing) as missing:
            await uow.results.detail(job)
        shots = await uow.results.screenshots(job)
    assert summary is not None
    assert summary.archive_missing
    assert missing.value.key == key
    assert len(shots) == 4
    again = await reconcile(store.sessions, store.archives, organization_id=org, grace=NO_GRACE)
    assert key in again.details["still_lost"]
    assert key not in again.details["lost"]

    await store.blobs.put(key, stored)  # restored from a backup
    back = await reconcile(
        store.sessions, store.archives, organization_id=org, repair=True, grace=NO_GRACE
    )
    assert key in back.details["restored"]
    async with store.unit(org) as uow:
        detail = await uow.results.detail(job)
    assert not detail.summary.archive_missing


async def test_orphan_blobs_are_deleted_only_after_the_grace_period(
    store: Any, org: uuid.UUID
) -> None:
    (job,) = await new_jobs(store, org, 1)
    async with store.sessions() as session:
        created = (await session.get(m.Job, job)).created_at
    key = result_archive_key(org, job, created, store.archives.codec)
    await put_result_document(store.archives, key, {"orphan": True})

    young = await reconcile(store.sessions, store.archives, organization_id=org, repair=True)
    assert young.details["young"] == [key]
    assert young.counts["deleted"] == 0
    assert await result_blobs(store) == [key]

    old = await reconcile(
        store.sessions, store.archives, organization_id=org, repair=True, grace=NO_GRACE
    )
    assert old.details["orphans"] == [key]
    assert old.counts["deleted"] == 1
    assert await result_blobs(store) == []
    # The job itself can still get its result.
    async with store.unit(org) as uow:
        await uow.results.save(job, make_output(org, job))
    assert not (
        await reconcile(store.sessions, store.archives, organization_id=org, grace=NO_GRACE)
    ).needs_attention


async def test_verify_reports_corrupt_blobs_and_never_deletes_them(
    store: Any, org: uuid.UUID
) -> None:
    (job,) = await saved_jobs(store, org, 1)
    key = await key_of(store, job)
    path = store.blobs.root.joinpath(*key.split("/"))
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    report = await reconcile(
        store.sessions,
        store.archives,
        organization_id=org,
        repair=True,
        verify=True,
        grace=NO_GRACE,
    )
    assert report.details["corrupt"] == [key]
    assert path.exists()


async def test_another_organizations_delete_leaves_the_result_and_its_blob(
    store: Any, org: uuid.UUID
) -> None:
    (job,) = await saved_jobs(store, org, 1)
    key = await key_of(store, job)
    other = uuid.uuid4()
    async with store.unit(other) as uow:
        await uow.reference.add_organization("other")
    with pytest.raises(NotFound):
        async with store.unit(other) as uow:
            await uow.jobs.delete(job)
    async with store.unit(other) as uow:
        with pytest.raises(NotFound):
            await uow.jobs.set_status(job, "failed")
    assert key in await result_blobs(store)
    async with store.unit(org) as uow:
        detail = await uow.results.detail(job)
        status = (await uow.jobs.get(job)).status
    assert detail.output["durationMs"] == 90500
    assert status == "pending"
