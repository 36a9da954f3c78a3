"""Defects the lifecycle machine found, each pinned by a test of its own (both backends)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from execstore.audit import verify_audit
from execstore.audit.archival import archive_audit
from execstore.clock import ManualClock
from execstore.operations import apply_retention
from support.timeline import new_org, utc

from .machine import FaultyBlobs, SimulatedCrash


async def test_audit_retention_killed_after_deleting_a_segment_blob_is_finished_by_the_next_run(
    store_at: Any,
) -> None:
    """The run verified the segment, checkpointed its end, wrote its tombstone and deleted
    its blob, then died before deleting the pointer row. The next run found the row, could
    not read the blob and set it aside on every run after; verify reported the chain
    unreadable for good. The tombstone is the evidence that the delete was decided."""
    clock = ManualClock(utc(2033, 3, 14, 9))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        other, _ = await new_org(store)
        for each in (org, other):
            async with store.unit(each) as uow:
                await uow.audit.record_many([{"action": "view", "resource_type": "claim"}] * 2)
        clock.advance(dt.timedelta(days=91))
        await archive_audit(store.sessions, store.archives, hot_days=90, clock=clock)
        clock.advance(dt.timedelta(days=2192))
        faulty = FaultyBlobs(store.archives.store)
        store.archives.store = faulty
        faulty.arm(2, after=True)  # checkpoint, tombstone, then the segment's delete
        with pytest.raises(SimulatedCrash):
            await apply_retention(
                store.sessions,
                store.archives,
                "audit",
                days=2192,
                organization_id=org,
                clock=clock,
            )
        assert faulty.tripped
        store.archives.cache.clear()  # a new process: nothing remembered
        for each in (org, other):  # the crashed one finished, the other one's whole
            again = await apply_retention(
                store.sessions,
                store.archives,
                "audit",
                days=2192,
                organization_id=each,
                clock=clock,
            )
            assert (again.set_aside, again.counts["archives"]) == ([], 1)
            report = await verify_audit(store.sessions, store.archives, organization_id=each)
            assert not report.needs_attention, report.set_aside
        async with store.unit(org) as uow:
            assert (await uow.audit.query()).items == []


async def test_verify_reads_segments_from_the_store_not_from_the_cache(store_at: Any) -> None:
    """A segment deleted (or overwritten) after this process had read it was still
    "verified" from the archive cache: a long-lived process calling ``verify_audit`` never
    named it. Verification now reads what the store holds."""
    clock = ManualClock(utc(2034, 1, 31, 23, 59))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        async with store.unit(org) as uow:
            await uow.audit.record({"action": "view", "resource_type": "claim"})
        clock.advance(dt.timedelta(days=91))
        archived = await archive_audit(
            store.sessions, store.archives, hot_days=90, organization_id=org, clock=clock
        )
        [key] = archived.details["keys"]
        verified = await verify_audit(store.sessions, store.archives, organization_id=org)
        assert not verified.needs_attention, verified.set_aside
        async with store.unit(org) as uow:
            assert len((await uow.audit.query()).items) == 1  # the segment is cached now
        assert await store.archives.store.delete(key)  # behind execstore's back
        report = await verify_audit(store.sessions, store.archives, organization_id=org)
        [result] = report.details["organizations"]
        assert result.problem is not None
        assert (result.problem.seq, result.problem.kind) == (1, "unreadable")
        assert [aside.key for aside in report.set_aside] == [str(org)]


async def test_reconcile_never_deletes_a_blob_whose_age_it_cannot_tell(store_at: Any) -> None:
    """A local blob between its link and its sidecar (a put still running: an archival
    run's segment, read back and about to be recorded) lists without metadata. The
    reconciler took it for an old orphan and deleted it under the run, which then recorded
    a pointer row to nothing and deleted the hot records. Without a recorded time a blob
    is now left alone (reported young)."""
    from pathlib import Path

    from execstore.archival import reconcile
    from execstore.results import ResultArchives
    from execstore.results.format import result_archive_key

    written = utc(2036, 2, 29, 12)
    clock = ManualClock(written)
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        key = result_archive_key(org, uuid.uuid4(), written, store.archives.codec)
        await store.archives.write_document(key, {"steps": []})
        # store_at's store is local: its sidecar is what a running put has not written yet.
        name = key.rsplit("/", 1)
        sidecar = Path(store.blobs.root) / name[0] / f".{name[1]}.meta.json"
        sidecar.unlink()
        clock.advance(dt.timedelta(days=1))
        [report] = await reconcile(
            store.sessions,
            store.archives,
            [ResultArchives()],
            organization_id=org,
            repair=True,
            clock=clock,
        )
        young, orphans = report.details["young"], report.details["orphans"]
        assert (young, orphans, report.counts["deleted"]) == ([key], [], 0)
        assert not report.needs_attention, report.set_aside
        assert await store.blobs.exists(key)


async def test_audit_retention_reverifies_the_segment_the_store_holds(store_at: Any) -> None:
    """Retention re-verifies a segment before deleting it; read through the cache, a
    segment overwritten in storage since this process read it "verified" and went, its
    tombstone vouching for a chain nobody had checked. It is now read from the store: the
    overwritten segment is set aside, left in place, and verify names it."""
    clock = ManualClock(utc(2033, 12, 31, 23))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        async with store.unit(org) as uow:
            await uow.audit.record({"action": "view", "resource_type": "claim"})
        clock.advance(dt.timedelta(days=91))
        [key] = (
            await archive_audit(
                store.sessions, store.archives, hot_days=90, organization_id=org, clock=clock
            )
        ).details["keys"]
        async with store.unit(org) as uow:
            assert len((await uow.audit.query()).items) == 1  # the segment is cached now
        forged, _ = store.archives.encode_document({"forged": True})
        await store.archives.store.delete(key)
        await store.archives.store.put(key, forged, metadata={})
        clock.advance(dt.timedelta(days=2192))
        report = await apply_retention(
            store.sessions, store.archives, "audit", days=2192, organization_id=org, clock=clock
        )
        assert [aside.key for aside in report.set_aside] == [key]
        assert report.details["tombstones"] == []
        assert report.counts["archives"] == 0
        assert await store.archives.store.exists(key)
        verified = await verify_audit(store.sessions, store.archives, organization_id=org)
        [result] = verified.details["organizations"]
        assert result.problem is not None
        assert [aside.key for aside in verified.set_aside] == [str(org)]


ON_POSTGRES = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)]
)


@ON_POSTGRES  # needs a statement that waits on the server
async def test_a_cancelled_statement_raises_cancelled_error(store_at: Any) -> None:
    """A run cancelled mid-statement (a timeout, a shutdown; the lifecycle machine's crash)
    raised PendingRollbackError from the session's close instead of CancelledError: the
    audit module's rollback hook read the invalidated connection's ``info``. That also
    swallowed the cancellation, so ``asyncio.timeout`` could not turn it into TimeoutError."""
    import asyncio

    import sqlalchemy as sa

    async with store_at(ManualClock(utc(2037, 6, 1))) as store:

        async def waits() -> None:
            async with store.sessions() as session:
                await session.execute(sa.text("SELECT pg_sleep(30)"))

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await waits()
        async with store.sessions() as session:  # the pool is fine afterwards
            assert await session.scalar(sa.text("SELECT 1")) == 1


@ON_POSTGRES  # partitions are PostgreSQL's
async def test_log_archival_cancelled_while_detaching_stays_cancelled_and_resumes(
    store_at: Any,
) -> None:
    """Cancelled while ``DETACH ... CONCURRENTLY`` waited for an older transaction, log
    archival unlocked its advisory lock on the connection the cancellation had
    invalidated, and raised DatabaseError (PendingRollbackError) in place of the
    cancellation. It stays cancelled now; the next run finishes the detach and every line
    reads exactly once meanwhile and after."""
    import asyncio

    import asyncpg

    from execstore.logs import NewLogEntry, archive_logs

    written = utc(2049, 5, 15, 8)
    clock = ManualClock(written)
    async with store_at(clock) as store:
        org, workflow = await new_org(store)
        async with store.unit(org) as uow:
            job = (await uow.jobs.create(workflow_id=workflow)).id
            await uow.logs.append(job, [NewLogEntry("kept once", timestamp=written)])
        clock.set(utc(2049, 7, 1, 0, 0, 1))  # May's partition is past the hot window
        dsn = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        blocker = await asyncpg.connect(dsn)
        try:
            holding = blocker.transaction(isolation="repeatable_read")
            await holding.start()
            await blocker.fetchval("SELECT count(*) FROM execution_log_partitioned")
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(2):
                    await archive_logs(
                        store.engine, store.sessions, store.archives, hot_days=30, clock=clock
                    )
            await holding.rollback()
        finally:
            await blocker.close()

        async def lines() -> list[str]:
            async with store.unit(org) as uow:
                return [e.message for e in (await uow.logs.for_job(job)).items]

        assert await lines() == ["kept once"]
        report = await archive_logs(
            store.engine, store.sessions, store.archives, hot_days=30, clock=clock
        )
        assert report.counts["lines_archived"] >= 1
        assert await lines() == ["kept once"]


async def test_reconcile_leaves_a_running_put_alone_under_a_clock_far_from_the_wall(
    store_at: Any,
) -> None:
    """Soak 2026-12-07, failure 2: ``archive_audit`` and ``reconcile --repair`` side by side
    under a store clock six years ahead of the wall. Reconcile swept the hidden temporary
    files of the archival's puts as crash leftovers "older than the grace": their
    modification times (the wall's) were compared with a cut-off taken from the store's
    clock. The put failed and archival set the organization aside, leaving its records hot.
    Leftovers are now aged by the clock that stamped them."""
    import os
    import time

    from execstore.archival import reconcile

    clock = ManualClock(utc(2038, 1, 19, 3, 14, 6))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        async with store.unit(org) as uow:
            await uow.audit.record_many([{"action": "view", "resource_type": "claim"}] * 2)
        clock.set(utc(2044, 1, 19, 3, 14, 6))
        folder = store.blobs.root / "audit" / str(org) / "2038" / "01" / "segments"
        folder.mkdir(parents=True)
        running = folder / f".0000000000000001-0000000000000002.ndjson.gz.tmp-{uuid.uuid4().hex}"
        running.write_bytes(b"a put still running")  # modified now, by the wall
        stale = folder / f".0000000000000001-0000000000000001.ndjson.gz.tmp-{uuid.uuid4().hex}"
        stale.write_bytes(b"a put killed two hours ago")
        two_hours_ago = time.time() - 7200
        os.utime(stale, (two_hours_ago, two_hours_ago))
        reports = await reconcile(
            store.sessions,
            store.archives,
            store.archive_kinds,
            repair=True,
            organization_id=org,
            clock=clock,
        )
        [audit] = [r for r in reports if r.details["kind"] == "audit"]
        relative = stale.relative_to(store.blobs.root).as_posix()
        assert audit.details["leftovers"] == [relative]
        assert running.exists()
        assert not stale.exists()
        running.unlink()  # the put finishes (or is killed): archival goes on undisturbed
        archived = await archive_audit(
            store.sessions, store.archives, hot_days=90, organization_id=org, clock=clock
        )
        assert (archived.set_aside, archived.counts["records"]) == ([], 2)


async def test_audit_retention_killed_after_its_tombstone_is_finished_under_another_retention(
    store_at: Any,
) -> None:
    """Soak 2026-12-07, failure 1: a retention run killed after writing a segment's
    tombstone (before deleting its blob) and re-run with another retention (2192 days,
    then 2942) could never finish: the tombstone records the retention, the create-only
    put of the new one conflicted with it, and every later run set the segment aside, its
    records readable past their retention. The earlier tombstone now stands."""
    clock = ManualClock(utc(2038, 1, 19, 3, 14, 6))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        async with store.unit(org) as uow:
            await uow.audit.record_many([{"action": "view", "resource_type": "claim"}] * 3)
        clock.set(utc(2044, 2, 1))
        await archive_audit(store.sessions, store.archives, hot_days=90, clock=clock)
        faulty = FaultyBlobs(store.archives.store)
        store.archives.store = faulty
        faulty.arm(1, after=True)  # the checkpoint, then the tombstone
        with pytest.raises(SimulatedCrash, match="retention"):
            await apply_retention(
                store.sessions,
                store.archives,
                "audit",
                days=2192,
                organization_id=org,
                clock=clock,
            )
        store.archives.cache.clear()  # a new process: nothing remembered
        clock.set(utc(2050, 2, 1))
        again = await apply_retention(
            store.sessions, store.archives, "audit", days=2942, organization_id=org, clock=clock
        )
        assert (again.set_aside, again.counts["archives"], again.counts["records"]) == ([], 1, 3)
        [tombstone] = again.details["tombstones"]
        assert await store.archives.store.exists(tombstone)
        report = await verify_audit(store.sessions, store.archives, organization_id=org)
        assert not report.needs_attention, report.set_aside
        async with store.unit(org) as uow:
            assert (await uow.audit.query()).items == []
