"""Faults at every step of a save and of an archival batch, on both backends.

Real databases and the real LocalBlobStore; the fakes only inject the fault around them.
Each test then reruns and proves: no result lost, none duplicated, no orphan blob left
after the reconciler.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.blob import Archives
from execstore.errors import BlobStoreError
from execstore.results import backfill_results
from execstore.schema import models as m
from support.timeline import new_jobs

from .conftest import archive_key, make_output, reconcile, result_blobs, results_of
from .test_archival import URLS, make_legacy_jobs

NO_GRACE = dt.timedelta(0)


class Injected(Exception):
    """The fault these tests inject."""


class FaultyStore:
    """A real BlobStore whose Nth put fails after (or before) reaching the store."""

    def __init__(
        self,
        inner: Any,
        *,
        fail_put: int | None = None,
        after: bool = True,
        fail_delete: bool = False,
    ) -> None:
        self.inner = inner
        self.fail_put = fail_put
        self.after = after
        self.fail_delete = fail_delete
        self.puts = 0

    async def put(self, key: str, data: bytes | AsyncIterable[bytes], **kw: Any) -> Any:
        self.puts += 1
        failing = self.puts == self.fail_put
        if failing and not self.after:
            raise BlobStoreError("injected: upload refused")
        result = await self.inner.put(key, data, **kw)
        if failing:
            raise BlobStoreError("injected: connection dropped after the upload")
        return result

    async def delete(self, key: str) -> bool:
        if self.fail_delete:
            raise Injected("process died before its clean-up")
        return bool(await self.inner.delete(key))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def faulty_archives(store: Any, blobs: FaultyStore) -> Archives:
    return Archives(blobs, cache=None, codec=store.archives.codec)


def fail_on(statement_table: str, kind: type) -> Callable[[Any], None]:
    """A do_orm_execute hook raising on the first ``kind`` statement against a table."""

    def hook(state: Any) -> None:
        stmt = state.statement
        table = getattr(stmt, "table", None)
        if isinstance(stmt, kind) and getattr(table, "name", None) == statement_table:
            raise Injected(f"injected before {kind.__name__} {statement_table}")

    return hook


async def assert_consistent(store: Any, org: uuid.UUID, jobs: list[uuid.UUID], shots: int) -> None:
    """Every job has exactly one archive row, ``shots`` screenshot rows and its blob; no orphans."""
    report = await reconcile(
        store.sessions, store.archives, organization_id=org, repair=True, grace=NO_GRACE
    )
    assert report.details["lost"] == []
    assert report.details["pending"] == []
    after = await reconcile(store.sessions, store.archives, organization_id=org, grace=NO_GRACE)
    assert not after.needs_attention
    keys = [await archive_key(store, job) for job in jobs]
    async with store.sessions() as session:
        rows = await session.scalar(
            sa.select(sa.func.count()).where(m.ExecutionScreenshot.job_id.in_(jobs))
        )
    assert len(keys) == len(jobs)
    assert rows == shots * len(jobs)
    assert sorted(keys) == await result_blobs(store)
    async with store.unit(org) as uow:
        for job in jobs:
            detail = await results_of(uow).detail(job)
            assert detail is not None
            assert detail.output["durationMs"] == 90500


async def save(
    store: Any, org: uuid.UUID, job: uuid.UUID, archives: Archives | None = None, hook: Any = None
) -> None:
    async with store.unit(org) as uow:
        if hook is not None:
            sa.event.listen(uow.session.sync_session, "do_orm_execute", hook)
        repo = results_of(uow)
        if archives is not None:
            repo.archives = archives
        await repo.save(job, make_output(org, job))


async def test_upload_refused_writes_nothing(store: Any, org: uuid.UUID) -> None:
    (job,) = await new_jobs(store, org)
    blobs = FaultyStore(store.blobs, fail_put=1, after=False)
    with pytest.raises(BlobStoreError):
        await save(store, org, job, faulty_archives(store, blobs))
    assert await result_blobs(store) == []
    async with store.unit(org) as uow:
        assert await uow.results.find(job) is None
    await save(store, org, job)
    await assert_consistent(store, org, [job], 4)


async def test_failure_after_upload_leaves_an_orphan_the_reconciler_removes(
    store: Any, org: uuid.UUID
) -> None:
    (job,) = await new_jobs(store, org)
    blobs = FaultyStore(store.blobs, fail_put=1, after=True)
    with pytest.raises(BlobStoreError):
        await save(store, org, job, faulty_archives(store, blobs))
    assert len(await result_blobs(store)) == 1  # uploaded, but nobody knows the ref
    report = await reconcile(
        store.sessions, store.archives, organization_id=org, repair=True, grace=NO_GRACE
    )
    assert report.counts["deleted"] == 1
    await save(store, org, job)
    await assert_consistent(store, org, [job], 4)


@pytest.mark.parametrize(
    ("table", "kind"),
    [
        ("execution_screenshots", sa.Insert),  # after the archive row insert
        ("jobs", sa.Update),  # after the screenshot rows, before the summary
    ],
)
async def test_failure_after_archive_row_rolls_back_and_deletes_the_blob(
    store: Any, org: uuid.UUID, table: str, kind: type
) -> None:
    (job,) = await new_jobs(store, org)
    hook = fail_on(table, kind)
    if table == "jobs":
        # The summary is written by a flush, not an explicit statement: fail the flush.
        def flush_hook(session: Any, *_: Any) -> None:
            raise Injected("injected in flush")

        async def save_with_flush_fault() -> None:
            async with store.unit(org) as uow:
                sa.event.listen(uow.session.sync_session, "before_flush", flush_hook)
                await results_of(uow).save(job, make_output(org, job))

        with pytest.raises(Injected):
            await save_with_flush_fault()
    else:
        with pytest.raises(Injected):
            await save(store, org, job, hook=hook)
    assert await result_blobs(store) == []  # on_rollback removed what this save created
    async with store.unit(org) as uow:
        assert await uow.results.find(job) is None
    await save(store, org, job)
    await assert_consistent(store, org, [job], 4)


async def test_failure_at_commit_rolls_back_and_deletes_the_blob(
    store: Any, org: uuid.UUID
) -> None:
    (job,) = await new_jobs(store, org)

    def refuse_commit(session: Any) -> None:
        raise Injected("injected at commit")

    async def save_then_commit_fails() -> None:
        async with store.unit(org) as uow:
            sa.event.listen(uow.session.sync_session, "before_commit", refuse_commit)
            await results_of(uow).save(job, make_output(org, job))

    with pytest.raises(Injected):
        await save_then_commit_fails()
    assert await result_blobs(store) == []
    await save(store, org, job)
    await assert_consistent(store, org, [job], 4)


async def test_crash_before_clean_up_is_repaired_by_the_reconciler(
    store: Any, org: uuid.UUID
) -> None:
    jobs = await new_jobs(store, org, 2)
    blobs = FaultyStore(store.blobs, fail_delete=True)

    def refuse_commit(session: Any) -> None:
        raise Injected("killed before commit")

    async def doomed() -> None:
        async with store.unit(org) as uow:
            sa.event.listen(uow.session.sync_session, "before_commit", refuse_commit)
            repo = results_of(uow)
            repo.archives = faulty_archives(store, blobs)
            for job in jobs:
                await repo.save(job, make_output(org, job))

    with pytest.raises(Injected):
        await doomed()
    assert len(await result_blobs(store)) == 2  # the clean-up "died" too
    # A retry of one job reuses its identical blob; the other stays an orphan.
    await save(store, org, jobs[0])
    report = await reconcile(
        store.sessions, store.archives, organization_id=org, repair=True, grace=NO_GRACE
    )
    assert report.counts["deleted"] == 1
    await save(store, org, jobs[1])
    await assert_consistent(store, org, jobs, 4)


async def test_archival_batch_failing_midway_reruns_without_loss_or_duplicates(
    store: Any, org: uuid.UUID
) -> None:
    outputs = await make_legacy_jobs(store, org, 7, legacy_rows=1)
    blobs = FaultyStore(store.blobs, fail_put=5, after=True)  # the 5th upload, batch two
    with pytest.raises(BlobStoreError):
        await backfill_results(
            store.sessions,
            faulty_archives(store, blobs),
            organization_id=org,
            batch_size=3,
            screenshot_urls=URLS,
        )
    # Batch one committed; batch two's blobs wait for the re-run and are not orphans.
    report = await reconcile(
        store.sessions, store.archives, organization_id=org, repair=True, grace=NO_GRACE
    )
    assert report.counts["deleted"] == 0
    assert len(report.details["pending"]) >= 1
    rerun = await backfill_results(
        store.sessions, store.archives, organization_id=org, batch_size=3, screenshot_urls=URLS
    )
    assert rerun.counts["moved"] == 4
    await assert_consistent(store, org, list(outputs), 4)


async def test_archival_killed_before_commit_reruns_cleanly(store: Any, org: uuid.UUID) -> None:
    outputs = await make_legacy_jobs(store, org, 4)

    def killed(session: Any) -> None:
        raise Injected("killed after the batch's writes, before its commit")

    def sessions() -> Any:
        session = store.sessions()
        sa.event.listen(session.sync_session, "before_commit", killed)
        return session

    with pytest.raises(Injected):
        await backfill_results(sessions, store.archives, organization_id=org, screenshot_urls=URLS)
    assert len(await result_blobs(store)) == 4  # uploaded, never committed
    rerun = await backfill_results(
        store.sessions, store.archives, organization_id=org, screenshot_urls=URLS
    )
    assert rerun.counts["moved"] == 4
    await assert_consistent(store, org, list(outputs), 3)
