"""Archival of old log lines on PostgreSQL (partitions) and SQLite (batched deletes)."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.archival import reconcile
from execstore.logs import LogArchives, NewLogEntry
from execstore.schema import models as m
from support.timeline import new_jobs
from support.waiting import wait_until

from .conftest import archive, hot_count, lines, months_ago, read_all


async def _old_and_new(
    store: Any, org: uuid.UUID
) -> tuple[list[uuid.UUID], dict[uuid.UUID, list[Any]]]:
    """Three jobs: one whose lines cross two month boundaries, one old, one recent."""
    crossing, old, recent = await new_jobs(store, org, 3)
    end_of_month = months_ago(3, day=28, hour=23)
    sent = {
        # 90 lines an hour apart from the 28th three months ago: three months of lines.
        crossing: lines(90, start=end_of_month, step=dt.timedelta(hours=11), tag="x "),
        old: lines(12, start=months_ago(2), tag="o "),
        recent: lines(5, tag="r "),
    }
    async with store.unit(org) as uow:
        for job, batch in sent.items():
            await uow.logs.append(job, batch)
    return [crossing, old, recent], sent


def _same(got: list[Any], sent: list[NewLogEntry]) -> None:
    assert [(e.message, e.timestamp, e.level, e.step_index, e.step_name) for e in got] == [
        (s.message, s.timestamp, s.level, s.step_index, s.step_name) for s in sent
    ]
    assert [e.metadata for e in got] == [s.metadata for s in sent]
    assert [e.duration_ms for e in got] == [s.duration_ms for s in sent]


async def test_old_lines_move_to_chunks_and_read_back_unchanged(
    store: Any, org: uuid.UUID, backend: str
) -> None:
    (crossing, old, recent), sent = await _old_and_new(store, org)
    before = {job: await read_all(store, org, job) for job in sent}
    report = await archive(store)
    assert report.set_aside == []
    assert not report.needs_attention
    old_lines = sum(
        1
        for job in (crossing, old)
        for s in sent[job]
        if s.timestamp < months_ago(1, day=1, hour=0)
    )
    assert report.counts["lines_archived"] >= old_lines > 60
    # Read back through for_job: identical, in order, ids unchanged.
    for job in sent:
        got = await read_all(store, org, job, limit=9)
        _same(got, sent[job])
        assert [e.id for e in got] == [e.id for e in before[job]]
    assert await hot_count(store, old) == 0
    assert await hot_count(store, recent) == 5
    async with store.unit(org) as uow:
        tail = await uow.logs.tail(crossing, 3)
        assert [e.message for e in tail] == [s.message for s in sent[crossing][-3:]]
        warn = (await uow.logs.for_job(crossing, min_level="warn", limit=500)).items
        assert [e.message for e in warn] == [s.message for s in sent[crossing] if s.level >= 30]
    if backend == "postgres":
        assert report.details["partitions_dropped"]
        assert report.counts["hot_bytes_freed"] > 0
    else:
        assert report.counts["lines_deleted"] == report.counts["lines_archived"]


async def test_chunks_are_plain_ndjson_sorted_by_job(store: Any, org: uuid.UUID) -> None:
    (crossing, old, _), sent = await _old_and_new(store, org)
    await archive(store)
    async with store.sessions() as session:
        chunks = (
            await session.scalars(
                sa.select(m.ExecutionLogArchive).where(m.ExecutionLogArchive.organization_id == org)
            )
        ).all()
    assert chunks
    seen = []
    for chunk in chunks:
        assert chunk.blob_key.startswith(f"logs/{org}/")
        records = [
            json.loads(line)
            for line in gzip.decompress(await store.blobs.get(chunk.blob_key)).splitlines()
        ]
        assert len(records) == chunk.record_count
        keys = [(r["job_id"], r["timestamp"], r["id"]) for r in records]
        assert keys == sorted(keys)
        assert all(next(iter(r)) == "job_id" for r in records)
        months = {r["timestamp"][:7] for r in records}
        assert len(months) == 1  # a chunk never spans months
        seen += records
    archived = {r["message"] for r in seen}
    assert {s.message for s in sent[old]} <= archived
    assert {
        s.message for s in sent[crossing] if s.timestamp < months_ago(1, day=1, hour=0)
    } <= archived


async def test_a_second_run_finds_nothing_to_do(store: Any, org: uuid.UUID) -> None:
    await _old_and_new(store, org)
    await archive(store)
    again = await archive(store)
    assert (
        again.counts["lines_archived"],
        again.counts["chunks_written"],
        again.counts["lines_deleted"],
    ) == (0, 0, 0)


async def test_dry_run_changes_nothing(store: Any, org: uuid.UUID) -> None:
    (_, old, _), _sent = await _old_and_new(store, org)
    report = await archive(store, dry_run=True)
    assert report.dry_run
    assert report.counts["lines_eligible"] >= 12
    assert report.counts["lines_archived"] == 0
    assert await hot_count(store, old) == 12
    async with store.sessions() as session:
        assert not (
            await session.scalar(
                sa.select(sa.func.count())
                .select_from(m.ExecutionLogArchive)
                .where(m.ExecutionLogArchive.organization_id == org)
            )
        )


STEPS = ["upload", "pointer", "remove_hot", "commit"]


@pytest.mark.parametrize("step", STEPS)
async def test_a_crash_at_any_step_loses_and_doubles_nothing(
    store: Any, org: uuid.UUID, backend: str, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execstore.logs import archival

    (crossing, old, recent), sent = await _old_and_new(store, org)
    crashed = []

    def crash_after(original: Any) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = await original(*args, **kwargs)
            if not crashed:
                crashed.append(step)
                raise RuntimeError(f"crash after {step}")
            return result

        return wrapper

    def crash_before(original: Any) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not crashed:
                crashed.append(step)
                raise RuntimeError(f"crash before {step}")
            return await original(*args, **kwargs)

        return wrapper

    remove_hot = "_detach_partition" if backend == "postgres" else "_delete_lines"
    target, wrap = {
        "upload": ("_upload", crash_after),
        "pointer": ("_record", crash_before),
        "remove_hot": (remove_hot, crash_before),
        "commit": ("_record", crash_after),  # the pointer is in, the transaction dies
    }[step]
    monkeypatch.setattr(archival, target, wrap(getattr(archival, target)))
    with pytest.raises(RuntimeError, match="crash"):
        await archive(store)
    # Between the crash and the rerun, readers still see every line exactly once.
    for job in sent:
        _same(await read_all(store, org, job), sent[job])
    monkeypatch.undo()
    report = await archive(store)
    assert report.set_aside == []
    for job in sent:
        got = await read_all(store, org, job)
        _same(got, sent[job])
        assert len({e.id for e in got}) == len(got)
    assert await hot_count(store, old) == 0
    assert await hot_count(store, recent) == 5
    [logs] = await reconcile(
        store.sessions,
        store.archives,
        [LogArchives()],
        repair=True,
        grace=dt.timedelta(0),
        organization_id=org,
    )
    assert (logs.details["lost"], logs.details["corrupt"]) == ([], [])
    async with store.sessions() as session:
        count = await session.scalar(
            sa.select(sa.func.sum(m.ExecutionLogArchive.record_count)).where(
                m.ExecutionLogArchive.organization_id == org
            )
        )
    assert count == sum(len(sent[j]) for j in (crossing, old)) - await hot_count(store, crossing)


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_crash_before_the_drop_is_finished_by_the_next_run(
    store: Any, org: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execstore.logs import archival

    (crossing, old, _), sent = await _old_and_new(store, org)

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("crash before drop")

    monkeypatch.setattr(archival, "_drop_partition", crash)
    with pytest.raises(RuntimeError, match="crash before drop"):
        await archive(store)
    async with store.sessions() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(m.ExecutionLogDetached))
    # Lines now both in a detached partition and in chunks: read once each.
    assert await hot_count(store, crossing) > 0
    assert await _chunks(store, org)
    for job in sent:
        _same(await read_all(store, org, job), sent[job])
    monkeypatch.undo()
    report = await archive(store)
    assert report.details["partitions_dropped"]
    async with store.sessions() as session:
        assert not await session.scalar(
            sa.select(sa.func.count()).select_from(m.ExecutionLogDetached)
        )
    _same(await read_all(store, org, old), sent[old])


async def test_concurrent_workers_archive_every_line_once(store: Any, org: uuid.UUID) -> None:
    jobs = await new_jobs(store, org, 6)
    sent = {
        job: lines(25, start=months_ago(3 + i % 2), seed=i, tag=f"{i} ")
        for i, job in enumerate(jobs)
    }
    async with store.unit(org) as uow:
        for job, batch in sent.items():
            await uow.logs.append(job, batch)
    reports = await asyncio.gather(*(archive(store, chunk_rows=20) for _ in range(3)))
    assert all(r.set_aside == [] for r in reports)
    for job in jobs:
        _same(await read_all(store, org, job), sent[job])
        assert await hot_count(store, job) == 0
    async with store.sessions() as session:
        count = await session.scalar(
            sa.select(sa.func.sum(m.ExecutionLogArchive.record_count)).where(
                m.ExecutionLogArchive.organization_id == org
            )
        )
    assert count == 150


async def test_lines_of_a_job_deleted_behind_our_back_are_set_aside(
    store: Any, org: uuid.UUID, backend: str
) -> None:
    kept, gone = await new_jobs(store, org, 2)
    async with store.unit(org) as uow:
        await uow.logs.append(kept, lines(4, start=months_ago(4)))
        await uow.logs.append(gone, lines(3, start=months_ago(4)))
    async with store.sessions() as session, session.begin():
        await session.execute(sa.delete(m.Job).where(m.Job.id == gone))  # not through execstore
    try:
        report = await archive(store)
        assert [a.key for a in report.set_aside] == [f"job {gone}"]
        assert "3 line(s)" in report.set_aside[0].reason
        assert report.needs_attention
        assert await hot_count(store, gone) == 3  # left intact
        assert sum(c.record_count for c in await _chunks(store, org)) == 4  # the rest is archived
        if backend == "postgres":
            assert report.details["partitions_kept"]  # stays detached (and readable) until resolved
        else:
            assert await hot_count(store, kept) == 0
    finally:
        async with store.sessions() as session, session.begin():
            for table in await _hot_tables(session):
                await session.execute(sa.delete(table).where(table.c.job_id == gone))
    again = await archive(store)
    assert again.set_aside == []
    async with store.sessions() as session:
        assert not await session.scalar(
            sa.select(sa.func.count()).select_from(m.ExecutionLogDetached)
        )


async def _hot_tables(session: Any) -> list[Any]:
    from execstore.logs.repository import detached_tables

    return [m.ExecutionLogEntry.__table__, *await detached_tables(session)]


async def test_deleting_a_job_rewrites_the_chunks_it_shares(store: Any, org: uuid.UUID) -> None:
    first, second = await new_jobs(store, org, 2)
    sent = {
        first: lines(5, start=months_ago(3), tag="a "),
        second: lines(4, start=months_ago(3), tag="b "),
    }
    async with store.unit(org) as uow:
        for job, batch in sent.items():
            await uow.logs.append(job, batch)
    await archive(store, chunk_rows=100)
    [before] = await _chunks(store, org)
    assert before.record_count == 9
    async with store.unit(org) as uow:
        gone = await uow.jobs.delete(first)
    assert before.blob_key in gone
    assert not await store.blobs.exists(before.blob_key)
    [after] = await _chunks(store, org)
    assert after.record_count == 4
    assert after.revision == 1
    assert after.blob_key != before.blob_key
    records = [
        json.loads(x) for x in gzip.decompress(await store.blobs.get(after.blob_key)).splitlines()
    ]
    assert {r["job_id"] for r in records} == {str(second)}
    _same(await read_all(store, org, second), sent[second])
    async with store.unit(org) as uow:
        await uow.jobs.delete(second)
    assert await _chunks(store, org) == []
    assert not await store.blobs.exists(after.blob_key)


async def test_a_rolled_back_job_deletion_keeps_the_chunk(store: Any, org: uuid.UUID) -> None:
    first, second = await new_jobs(store, org, 2)
    async with store.unit(org) as uow:
        await uow.logs.append(first, lines(3, start=months_ago(3)))
        await uow.logs.append(second, lines(3, start=months_ago(3)))
    await archive(store, chunk_rows=100)
    [before] = await _chunks(store, org)

    async def delete_then_fail() -> None:
        async with store.unit(org) as uow:
            await uow.jobs.delete(first)
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError, match="changed my mind"):
        await delete_then_fail()
    [still] = await _chunks(store, org)
    assert still.blob_key == before.blob_key
    assert await store.blobs.exists(before.blob_key)
    assert [k async for k in _keys(store, org)] == [before.blob_key]  # the rewrite is gone
    assert len(await read_all(store, org, first)) == 3


async def _keys(store: Any, org: uuid.UUID) -> Any:
    async for info in store.blobs.list(f"logs/{org}/"):
        yield info.key


async def _chunks(store: Any, org: uuid.UUID) -> list[Any]:
    async with store.sessions() as session:
        return list(
            (
                await session.scalars(
                    sa.select(m.ExecutionLogArchive).where(
                        m.ExecutionLogArchive.organization_id == org
                    )
                )
            ).all()
        )


async def test_a_chunk_that_does_not_read_back_right_keeps_its_lines_hot(
    store: Any, org: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blob store corrupts what it stored: verification catches it before any delete."""
    (job,) = await new_jobs(store, org)
    sent = lines(6, start=months_ago(3))
    async with store.unit(org) as uow:
        await uow.logs.append(job, sent)
    real_put = store.blobs.put

    async def corrupting_put(key: str, data: Any, **options: Any) -> Any:
        result = await real_put(key, data, **options)
        if key.startswith(f"logs/{org}/"):
            path = store.blobs.root / key  # the local store keeps a blob as a file
            raw = bytearray(path.read_bytes())
            raw[len(raw) // 2] ^= 0xFF
            path.write_bytes(bytes(raw))
        return result

    monkeypatch.setattr(store.blobs, "put", corrupting_put)
    from execstore.errors import ArchiveCorrupt

    with pytest.raises(ArchiveCorrupt):
        await archive(store)
    monkeypatch.undo()
    async with store.sessions() as session:
        recorded = await session.scalar(
            sa.select(sa.func.count())
            .select_from(m.ExecutionLogArchive)
            .where(m.ExecutionLogArchive.organization_id == org)
        )
    assert recorded == 0
    assert await hot_count(store, job) == 6  # nothing hot was removed
    _same(await read_all(store, org, job), sent)


_PENDING_DETACHES = (
    "SELECT count(*) FROM pg_inherits WHERE inhdetachpending "
    "AND inhparent = 'execution_log_partitioned'::regclass"
)
_WAITING_ADVISORY = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_workers_take_turns_detaching_partitions(store: Any, org: uuid.UUID) -> None:
    """PostgreSQL allows one pending detach per table: a second worker waits, never fails."""
    jobs = await new_jobs(store, org, 2)
    async with store.unit(org) as uow:
        await uow.logs.append(jobs[0], lines(5, start=months_ago(6)))
        await uow.logs.append(jobs[1], lines(5, start=months_ago(7)))

    async def one(sql: str) -> bool:
        async with store.engine.connect() as conn:
            return bool(await conn.scalar(sa.text(sql)) == 1)

    blocker = await store.engine.connect()
    try:
        # An open transaction that has read the table keeps the first worker's DETACH
        # CONCURRENTLY pending (it waits for older snapshots).
        await blocker.execute(sa.text("SELECT count(*) FROM execution_log_partitioned"))
        first = asyncio.create_task(archive(store))
        await wait_until(lambda: one(_PENDING_DETACHES), "the first worker's detach pending")
        second = asyncio.create_task(archive(store))
        # The second worker reaches the other month's detach and waits for the first's.
        await wait_until(lambda: one(_WAITING_ADVISORY), "the second worker waiting its turn")
        assert not first.done()
        assert not second.done()
        await blocker.rollback()
        reports = await asyncio.gather(first, second)
    finally:
        await blocker.close()
    assert all(r.set_aside == [] for r in reports)
    for job in jobs:
        assert await hot_count(store, job) == 0
        assert len(await read_all(store, org, job)) == 5
