"""Log reads, archival, deletion and retention with a second organization in the way.

Job ids never repeat across organizations, so a condition that forgets the
organization passes with one tenant. Here organization B holds rows that match
organization A's conditions everywhere but in the organization: lines at the same
instants, an archive pointer row whose job range and fingerprints cover A's job (marked
lost, or naming a blob that is gone), chunks past the same retention.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa

from execstore.clock import ManualClock
from execstore.config import Codec
from execstore.logs import NewLogEntry, archive_logs
from execstore.logs.format import job_fingerprints
from execstore.operations import apply_retention
from execstore.schema import models as m
from support.timeline import new_job, new_org, utc

HOT_DAYS = 30


async def _lines(store: Any, org: uuid.UUID, job: uuid.UUID, times: list[dt.datetime]) -> None:
    async with store.unit(org) as uow:
        await uow.logs.append(
            job, [NewLogEntry(f"{org.hex[:4]} {i}", timestamp=t) for i, t in enumerate(times)]
        )


async def _archive(store: Any, clock: ManualClock) -> None:
    await archive_logs(
        store.engine, store.sessions, store.archives, hot_days=HOT_DAYS, clock=clock, chunk_rows=50
    )


async def _chunks(store: Any, org: uuid.UUID) -> list[m.ExecutionLogArchive]:
    async with store.sessions() as session:
        rows = await session.scalars(
            sa.select(m.ExecutionLogArchive)
            .where(m.ExecutionLogArchive.organization_id == org)
            .order_by(m.ExecutionLogArchive.id)
        )
        return list(rows.all())


async def _foreign_pointer(
    store: Any, owner: uuid.UUID, covers: list[uuid.UUID], at: dt.datetime, *, lost: bool
) -> int:
    """A pointer row of ``owner`` whose job range and fingerprints cover ``covers``."""
    low, high = min(covers), max(covers)
    async with store.sessions() as session, session.begin():
        row = m.ExecutionLogArchive(
            organization_id=owner,
            start_date=at - dt.timedelta(days=20),
            end_date=at + dt.timedelta(days=5),
            first_job=uuid.UUID(int=low.int - 1),
            last_job=uuid.UUID(int=high.int + 1),
            job_keys=job_fingerprints(covers),
            source_id=None,
            revision=0,
            lost=lost,
            archived_at=at,
            raw_size=10,
            stored_size=10,
            record_count=1,
            codec=Codec.GZIP,
            format_version=1,
            sha256=bytes(32),
            blob_key=f"logs/{owner}/{at:%Y/%m}/{low}/c{uuid.uuid4().int % 10**9}.ndjson.gz",
        )
        session.add(row)
        await session.flush()
        return int(row.id)


async def test_reads_ignore_another_organizations_chunk_that_covers_the_job(
    store_at: Any,
) -> None:
    month = utc(2037, 3, 1)
    clock = ManualClock(month)
    async with store_at(clock) as store:
        a, wf_a = await new_org(store, "A")
        b, _ = await new_org(store, "B")
        job = await new_job(store, a, wf_a)
        times = [month + dt.timedelta(days=d) for d in (1, 8, 15)]
        await _lines(store, a, job, times)
        clock.set(utc(2037, 5, 1))
        await _archive(store, clock)
        await _lines(store, a, job, [utc(2037, 5, 2)])  # and one hot line
        # B's chunk, lost to the reconciler, whose range and fingerprints cover A's job.
        await _foreign_pointer(store, b, [job], times[1], lost=True)
        async with store.unit(a) as uow:
            page = await uow.logs.for_job(job)
            tail = await uow.logs.tail(job, 2)
            after = await uow.logs.for_job(
                job, cursor=(await uow.logs.for_job(job, limit=1)).next_cursor
            )
        assert [e.timestamp for e in page.items] == [*times, utc(2037, 5, 2)]
        assert [e.timestamp for e in tail] == [times[2], utc(2037, 5, 2)]
        assert [e.timestamp for e in after.items] == [*times[1:], utc(2037, 5, 2)]


async def test_deleting_a_job_leaves_another_organizations_chunk_that_covers_it(
    store_at: Any,
) -> None:
    month = utc(2037, 6, 1)
    clock = ManualClock(month)
    async with store_at(clock) as store:
        a, wf_a = await new_org(store, "A")
        b, _ = await new_org(store, "B")
        gone, kept = await new_job(store, a, wf_a), await new_job(store, a, wf_a)
        times = [month + dt.timedelta(days=d) for d in (2, 12)]
        await _lines(store, a, gone, times)
        await _lines(store, a, kept, times)
        clock.set(utc(2037, 8, 1))
        await _archive(store, clock)
        [own] = await _chunks(store, a)
        # B's chunk covers A's job and names a blob that is gone (not yet marked lost):
        # reading it would fail, and it is not A's to rewrite.
        foreign = await _foreign_pointer(store, b, [gone], times[0], lost=False)
        async with store.unit(a) as uow:
            keys = await uow.jobs.delete(gone)
        assert keys == [own.blob_key]
        [rewritten] = await _chunks(store, a)
        assert (rewritten.record_count, rewritten.first_job, rewritten.last_job) == (2, kept, kept)
        async with store.sessions() as session:
            theirs = await session.get(m.ExecutionLogArchive, foreign)
        assert theirs is not None
        assert (theirs.record_count, theirs.revision, theirs.lost) == (1, 0, False)
        async with store.unit(a) as uow:
            assert [e.timestamp for e in (await uow.logs.for_job(kept)).items] == times


async def test_archival_files_each_organizations_lines_under_its_own_chunks(
    store_at: Any,
) -> None:
    month = utc(2037, 9, 1)
    clock = ManualClock(month)
    async with store_at(clock) as store:
        orgs = [await new_org(store, name) for name in ("A", "B")]
        times = [month + dt.timedelta(days=d, hours=3) for d in (0, 9, 18, 27)]
        jobs = {}
        for org, workflow in orgs:
            jobs[org] = await new_job(store, org, workflow)
            await _lines(store, org, jobs[org], times)  # the same instants in both
        clock.set(utc(2037, 11, 1))
        await _archive(store, clock)
        for org, _ in orgs:
            [chunk] = await _chunks(store, org)
            assert (chunk.first_job, chunk.last_job, chunk.record_count) == (
                jobs[org],
                jobs[org],
                4,
            )
            assert chunk.blob_key.startswith(f"logs/{org}/2037/09/")
            async with store.unit(org) as uow:
                entries = (await uow.logs.for_job(jobs[org])).items
            assert [(e.job_id, e.timestamp) for e in entries] == [(jobs[org], t) for t in times]
            assert all(e.message.startswith(org.hex[:4]) for e in entries)


async def test_retention_for_one_organization_leaves_the_others_chunks(store_at: Any) -> None:
    month = utc(2038, 1, 1)
    clock = ManualClock(month)
    async with store_at(clock) as store:
        orgs = [await new_org(store, name) for name in ("A", "B")]
        for org, workflow in orgs:
            job = await new_job(store, org, workflow)
            await _lines(store, org, job, [month + dt.timedelta(days=3)])
        clock.set(utc(2038, 4, 1))  # January's partition ends before the cut-off
        await _archive(store, clock)
        (a, _), (b, _) = orgs
        async with store.unit(b) as uow:
            await uow.logs.set_retention(HOT_DAYS)  # B's short retention is B's alone
        clock.set(utc(2038, 6, 1))  # past B's 30 days, not past A's default 365
        only_a = await apply_retention(
            store.sessions,
            store.archives,
            "logs",
            days=365,
            hot_days=HOT_DAYS,
            organization_id=a,
            clock=clock,
        )
        assert (only_a.counts["organizations"], only_a.counts["archives"]) == (1, 0)
        assert len(await _chunks(store, b)) == 1  # B's was due, but A's run must not touch it
        only_b = await apply_retention(
            store.sessions,
            store.archives,
            "logs",
            days=365,
            hot_days=HOT_DAYS,
            organization_id=b,
            clock=clock,
        )
        assert (only_b.counts["organizations"], only_b.counts["archives"]) == (1, 1)
        assert len(await _chunks(store, a)) == 1
        assert await _chunks(store, b) == []
