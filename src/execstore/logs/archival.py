"""Archive log lines older than the hot window: ``execstore archive logs``.

PostgreSQL (native mode), per month whose partition ends before the clock's
``now - hot_days``:

1. register the partition in ``execution_log_detached`` (readers include it from now
   on), then ``DETACH PARTITION ... CONCURRENTLY`` on an autocommit connection: no
   lock blocks appends or reads of other months, and no line can enter the detached
   table any more (a late line for that month gets a new partition on the spot);
2. per organization, cut the detached table's lines into chunks, upload each, read it
   back and verify its sha256, record its pointer row (``source_id`` = the registry
   row) in a transaction of its own;
3. drop the table once the pointer rows count every line it holds, in the same
   transaction that removes its registry row.

Lines whose job no longer exists (no organization to file them under) are set aside:
reported with their job id, kept, retried on the next run; their partition stays
detached (and readable) until they are resolved.

pg_partman mode: pg_partman 4.x always keeps a DEFAULT partition, and PostgreSQL refuses
``DETACH ... CONCURRENTLY`` while one exists, so a month is detached with a plain
``DETACH`` in a short transaction under ``lock_timeout`` (a brief ACCESS EXCLUSIVE lock
on the parent: appends wait for it, or the run gives up and the next one retries).
Lines that landed in the DEFAULT partition are archived like SQLite's, below.

SQLite (and a DEFAULT partition): lines older than the cut-off are chunked the same way;
each chunk's pointer row is inserted and its lines deleted in one transaction, after
the upload was verified.

Crash safety: a step that dies is redone by the next run. Keys are deterministic, so an
upload repeated finds its own bytes (a no-op); pointer rows are inserted with ``ON
CONFLICT DO NOTHING``; a detach left pending is finalized; nothing hot is removed before
its chunk is verified and recorded. Concurrency: workers take a session advisory lock
per partition (others skip it and report it busy); chunk writes of the delete path
check that every line they delete was still there, else they roll back (another
worker got there first). A backfill of the legacy table in progress pauses archival.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from execstore.archival.pointers import archive_ref
from execstore.blob import ArchiveRef, Archives
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import InvalidArgument, translate_database_errors
from execstore.logs.chunks import (
    Chunk,
    ChunkBuilder,
    chunk_values,
    insert_pointer,
    source_rows,
    upload_chunk,
)
from execstore.logs.repository import entry_table_named
from execstore.operations.batch import BatchReport, Progress
from execstore.schema import models as m
from execstore.schema.partitions import LOG_TABLE, Partition, log_partitions

__all__ = ["BACKFILL_BUSY_PHASES", "COUNTS", "archive_logs"]

BACKFILL_BUSY_PHASES: Final = (1, 2)
"""Backfill phases (copying, swapped but unverified) during which archival waits."""
_LOCK_PREFIX: Final = "execstore-log-archive:"
_JOBS_PER_QUERY: Final = 200
_DETACH_LOCK_TIMEOUT: Final = "10s"
_DETACH_LOCK: Final = sa.func.hashtextextended("execstore-log-detach", 0)
_entry_table: sa.Table = m.ExecutionLogEntry.__table__  # type: ignore[assignment]
_archive = m.ExecutionLogArchive
_detached = m.ExecutionLogDetached


COUNTS: Final = (
    "lines_archived",
    "chunks_written",
    "chunks_skipped",
    "raw_bytes",
    "stored_bytes",
    "lines_deleted",
    "hot_bytes_freed",
    "lines_eligible",
    "hot_bytes_eligible",
)
"""The counts of an ``archive logs`` report. ``chunks_skipped``: chunks another worker
wrote first, or whose lines changed meanwhile (redone later); ``lines_eligible`` and
``hot_bytes_eligible``: what a dry run measured."""
_LISTS: Final = (
    "partitions_detached",
    "partitions_dropped",
    "partitions_kept",  # detached partitions not dropped yet: some lines were set aside
    "busy",  # partitions another worker was archiving (left to it)
)


async def archive_logs(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    *,
    hot_days: int = 30,
    chunk_rows: int = 2000,
    clock: Clock = SYSTEM_CLOCK,
    dry_run: bool = False,
    on_progress: Progress | None = None,
) -> BatchReport:
    """The report of archiving every log line older than ``hot_days`` (see the module doc).

    ``details`` lists the partitions detached, dropped, kept (lines set aside) and busy
    (another worker's), and says ``waiting_for_backfill`` while ``execstore backfill
    logs`` has not verified. "Older" is by ``clock`` (the store's: ``store.clock``),
    which also stamps the pointer rows and the detach registry.
    """
    if chunk_rows < 1:
        raise InvalidArgument("chunk_rows must be at least 1")
    report = BatchReport.start("archive logs", *COUNTS, dry_run=dry_run)
    report.details.update({name: [] for name in _LISTS}, waiting_for_backfill=False)
    cutoff = clock.now() - dt.timedelta(days=hot_days)
    run = _Run(engine, sessions, archives, report, chunk_rows, on_progress, clock)
    if await run.backfill_busy():
        report.details["waiting_for_backfill"] = True
        return report
    if engine.dialect.name != "postgresql":
        await run.archive_table(_entry_table, source_id=None, before=cutoff, delete=True)
        return report
    parts = await run.partitions()
    default = next((p for p in parts if p.default), None)
    due = [p for p in parts if not p.default and p.end is not None and p.end <= cutoff]
    if dry_run:
        await run.measure(due, default, cutoff)
        return report
    # A crash may have left a detach pending: PostgreSQL allows one per table, so
    # finish those before starting new ones.
    for registered in await run.registered():
        async with run.partition_lock(registered.table_name) as mine:
            if mine and await run.still_registered(registered):
                await run.finish_detach(registered, parts, concurrently=default is None)
    for part in due:
        async with run.partition_lock(part.name) as mine:
            if not mine:
                report.details["busy"].append(part.name)
                continue
            # Another worker may have detached it between our listing and our lock.
            if any(p.oid == part.oid and not p.detach_pending for p in await run.partitions()):
                await run.detach(part, concurrently=default is None)
    for registered in await run.registered():
        async with run.partition_lock(registered.table_name) as mine:
            if not mine:
                report.details["busy"].append(registered.table_name)
                continue
            if not await run.still_registered(registered):
                continue  # dropped by another worker meanwhile
            await run.finish_detach(registered, parts, concurrently=default is None)
            table = entry_table_named(registered.table_name)
            await run.archive_table(table, source_id=registered.id, before=None, delete=False)
            await run.drop_if_archived(registered)
    if default is not None:
        table = entry_table_named(default.name)
        await run.archive_table(table, source_id=None, before=cutoff, delete=True)
    return report


class _Changed(Exception):
    """A chunk's lines changed under it (another worker, a job deletion): redo later."""


class _Run:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        archives: Archives,
        report: BatchReport,
        chunk_rows: int,
        on_progress: Progress | None,
        clock: Clock,
    ) -> None:
        self.clock = clock
        self.engine = engine
        self.sessions = sessions
        self.archives = archives
        self.report = report
        self.chunk_rows = chunk_rows
        self.on_progress = on_progress

    async def backfill_busy(self) -> bool:
        async with self.sessions() as session:
            with translate_database_errors():
                phase = await session.scalar(
                    sa.select(m.ExecutionLogBackfill.phase).where(m.ExecutionLogBackfill.id == 1)
                )
        return phase in BACKFILL_BUSY_PHASES

    async def partitions(self) -> list[Partition]:
        async with self.engine.connect() as conn:
            return await conn.run_sync(log_partitions)

    async def registered(self) -> list[m.ExecutionLogDetached]:
        async with self.sessions() as session:
            with translate_database_errors():
                rows = await session.scalars(sa.select(_detached).order_by(_detached.range_start))
                return list(rows.all())

    async def still_registered(self, registered: m.ExecutionLogDetached) -> bool:
        async with self.sessions() as session:
            with translate_database_errors():
                found = await session.scalar(
                    sa.select(_detached.id).where(_detached.id == registered.id)
                )
        return found is not None

    @asynccontextmanager
    async def partition_lock(self, name: str) -> AsyncIterator[bool]:
        key = sa.func.hashtextextended(_LOCK_PREFIX + name, 0)
        async with self.engine.connect() as conn:
            mine = bool(await conn.scalar(sa.select(sa.func.pg_try_advisory_lock(key))))
            await conn.commit()
            try:
                yield mine
            finally:
                # A connection a cancelled statement invalidated is closed, and its lock
                # with it: unlocking there would raise in place of the cancellation.
                if mine and not conn.invalidated:
                    await conn.scalar(sa.select(sa.func.pg_advisory_unlock(key)))
                    await conn.commit()

    async def detach(self, part: Partition, *, concurrently: bool) -> None:
        async with self.sessions() as session, session.begin():
            stmt = (
                postgresql.insert(_detached)
                .values(
                    table_name=part.name,
                    range_start=part.start,
                    range_end=part.end,
                    registered_at=self.clock.now(),
                )
                .on_conflict_do_nothing(index_elements=["table_name"])
            )
            with translate_database_errors():
                await session.execute(stmt)
        await _detach_partition(self.engine, self.sessions, part.name, concurrently=concurrently)
        self.report.details["partitions_detached"].append(part.name)

    async def finish_detach(
        self, registered: m.ExecutionLogDetached, parts: list[Partition], *, concurrently: bool
    ) -> None:
        """Complete what a crashed run left: a registered partition still (half) attached."""
        current = {p.name: p for p in await self.partitions()}
        part = current.get(registered.table_name)
        if part is None:
            return
        if part.detach_pending:
            await _detach_partition(
                self.engine, self.sessions, part.name, concurrently=True, finalize=True
            )
        else:
            await _detach_partition(
                self.engine, self.sessions, part.name, concurrently=concurrently
            )
        self.report.details["partitions_detached"].append(part.name)

    async def measure(
        self, due: list[Partition], default: Partition | None, cutoff: dt.datetime
    ) -> None:
        tables = [p.name for p in due] + [r.table_name for r in await self.registered()]
        async with self.sessions() as session:
            with translate_database_errors():
                for name in dict.fromkeys(tables):
                    lines = await session.scalar(sa.text(f'SELECT count(*) FROM "{name}"'))
                    size = await session.scalar(
                        sa.text("SELECT pg_total_relation_size(CAST(:t AS regclass))"),
                        {"t": f'"{name}"'},
                    )
                    self.report.add(lines_eligible=int(lines or 0))
                    self.report.add(hot_bytes_eligible=int(size or 0))
                if default is not None:
                    table = entry_table_named(default.name)
                    lines = await session.scalar(
                        sa.select(sa.func.count()).where(table.c.timestamp < cutoff)
                    )
                    self.report.add(lines_eligible=int(lines or 0))

    async def archive_table(
        self, table: sa.Table, *, source_id: int | None, before: dt.datetime | None, delete: bool
    ) -> None:
        """Chunk every line of ``table`` (older than ``before``), organization by organization."""
        by_org, orphans = await self._jobs_by_organization(table, before)
        for job_id, lines in orphans:
            self.report.aside(
                f"job {job_id}",
                f"NotFound: the job is gone, so its {lines} line(s) have no organization "
                f"to be archived under (kept in {table.name})",
            )
        if self.report.dry_run:
            self.report.add(lines_eligible=sum(n for jobs in by_org.values() for _, n in jobs))
            return
        for organization_id in sorted(by_org, key=str):
            jobs = [job for job, _ in by_org[organization_id]]
            builder = ChunkBuilder(organization_id, self.chunk_rows)
            archived = await self._archived_lines(source_id, organization_id)
            for start in range(0, len(jobs), _JOBS_PER_QUERY):
                batch = jobs[start : start + _JOBS_PER_QUERY]
                async with self.sessions() as session:
                    with translate_database_errors():
                        rows = (
                            await session.execute(source_rows(table, batch, before=before))
                        ).all()
                for row in rows:
                    if (row.job_id, row.id) in archived:
                        continue
                    done = builder.add(row)
                    if done is not None:
                        await self._write(table, done, source_id=source_id, delete=delete)
            for chunk in builder.finish():
                await self._write(table, chunk, source_id=source_id, delete=delete)

    async def _archived_lines(
        self, source_id: int | None, organization_id: uuid.UUID
    ) -> set[tuple[uuid.UUID, int]]:
        """The lines of a detached partition an earlier run already put in chunks.

        Only a run that stopped before the drop leaves any. They are skipped rather than
        chunked again: a job deleted since rewrote the chunks it shared, so chunking the
        rest anew would cut other chunks (other keys) and archive those lines twice.
        """
        if source_id is None:
            return set()
        async with self.sessions() as session:
            with translate_database_errors():
                chunks = (
                    await session.scalars(
                        sa.select(_archive).where(
                            _archive.source_id == source_id,
                            _archive.organization_id == organization_id,
                            _archive.lost.is_(False),
                        )
                    )
                ).all()
        found: set[tuple[uuid.UUID, int]] = set()
        for chunk in chunks:
            payload = await self.archives.read_bytes(archive_ref(chunk))
            for line in payload.split(b"\n"):
                if line:
                    record = json.loads(line)
                    found.add((uuid.UUID(record["job_id"]), int(record["id"])))
        return found

    async def _jobs_by_organization(
        self, table: sa.Table, before: dt.datetime | None
    ) -> tuple[dict[uuid.UUID, list[tuple[uuid.UUID, int]]], list[tuple[uuid.UUID, int]]]:
        counts = sa.select(table.c.job_id, sa.func.count().label("lines")).group_by(table.c.job_id)
        if before is not None:
            counts = counts.where(table.c.timestamp < before)
        per_job = counts.subquery()
        stmt = (
            sa.select(per_job.c.job_id, per_job.c.lines, m.Job.organization_id)
            .outerjoin(m.Job, m.Job.id == per_job.c.job_id)
            .order_by(per_job.c.job_id)
        )
        async with self.sessions() as session:
            with translate_database_errors():
                rows = (await session.execute(stmt)).all()
        by_org: dict[uuid.UUID, list[tuple[uuid.UUID, int]]] = {}
        orphans = []
        for job_id, lines, organization_id in rows:
            if organization_id is None:
                orphans.append((job_id, int(lines)))
            else:
                by_org.setdefault(organization_id, []).append((job_id, int(lines)))
        return by_org, orphans

    async def _write(
        self, table: sa.Table, chunk: Chunk, *, source_id: int | None, delete: bool
    ) -> None:
        key = chunk.key(self.archives)
        async with self.sessions() as session:
            with translate_database_errors():
                known = await session.scalar(sa.select(_archive.id).where(_archive.blob_key == key))
        if known is not None:
            self.report.add(chunks_skipped=1)  # recorded by an earlier (crashed) run or a peer
            return
        ref = await _upload(self.archives, chunk)
        values = chunk_values(chunk, ref, source_id=source_id, archived_at=self.clock.now())
        try:
            async with self.sessions() as session:
                with translate_database_errors():
                    async with session.begin():
                        if delete and await _delete_lines(session, table, chunk) != len(chunk):
                            raise _Changed
                        if not await _record(session, values):
                            raise _Changed
        except _Changed:
            self.report.add(chunks_skipped=1)
            return
        if delete:
            self.report.add(lines_deleted=len(chunk))
        self.report.add(
            lines_archived=len(chunk),
            chunks_written=1,
            raw_bytes=ref.raw_size,
            stored_bytes=ref.stored_size,
        )
        if self.on_progress is not None:
            self.on_progress(self.report.counts["lines_archived"], None)

    async def drop_if_archived(self, registered: m.ExecutionLogDetached) -> None:
        name = registered.table_name
        async with self.sessions() as session:
            with translate_database_errors():
                async with session.begin():
                    await session.execute(
                        sa.text(f"SET LOCAL lock_timeout = '{_DETACH_LOCK_TIMEOUT}'")
                    )
                    await session.scalar(
                        sa.select(_detached.id)
                        .where(_detached.id == registered.id)
                        .with_for_update()
                    )
                    held = int(await session.scalar(sa.text(f'SELECT count(*) FROM "{name}"')) or 0)
                    archived = await session.scalar(
                        sa.select(sa.func.coalesce(sa.func.sum(_archive.record_count), 0)).where(
                            _archive.source_id == registered.id
                        )
                    )
                    if held != int(archived or 0):
                        self.report.details["partitions_kept"].append(name)
                        return
                    size = await session.scalar(
                        sa.text("SELECT pg_total_relation_size(CAST(:t AS regclass))"),
                        {"t": f'"{name}"'},
                    )
                    await _drop_partition(session, name)
                    await session.execute(sa.delete(_detached).where(_detached.id == registered.id))
        self.report.details["partitions_dropped"].append(name)
        self.report.add(hot_bytes_freed=int(size or 0))


# Each step below is one module-level function so a test can make it fail (a crash).


async def _upload(archives: Archives, chunk: Chunk) -> ArchiveRef:
    return await upload_chunk(archives, chunk)


async def _record(session: AsyncSession, values: dict[str, Any]) -> bool:
    return await insert_pointer(session, values)


async def _delete_lines(session: AsyncSession, table: sa.Table, chunk: Chunk) -> int:
    gone = 0
    jobs = list(dict.fromkeys(chunk.jobs))
    for start in range(0, len(chunk.ids), 1000):
        ids: Sequence[int] = chunk.ids[start : start + 1000]
        result = await session.execute(
            sa.delete(table).where(table.c.job_id.in_(jobs), table.c.id.in_(ids))
        )
        gone += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return gone


async def _detach_partition(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    *,
    concurrently: bool,
    finalize: bool = False,
) -> None:
    if concurrently or finalize:
        # CONCURRENTLY (and FINALIZE) cannot run inside a transaction block. PostgreSQL
        # allows one pending detach per table, so workers take turns (a session lock).
        clause = "FINALIZE" if finalize else "CONCURRENTLY"
        async with engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            with translate_database_errors():
                await auto.execute(sa.select(sa.func.pg_advisory_lock(_DETACH_LOCK)))
                try:
                    await auto.exec_driver_sql(
                        f'ALTER TABLE {LOG_TABLE} DETACH PARTITION "{name}" {clause}'
                    )
                finally:
                    if not auto.invalidated:  # else closed, and the lock gone with it
                        await auto.execute(sa.select(sa.func.pg_advisory_unlock(_DETACH_LOCK)))
        return
    async with sessions() as session:
        with translate_database_errors():
            async with session.begin():
                await session.execute(sa.text(f"SET LOCAL lock_timeout = '{_DETACH_LOCK_TIMEOUT}'"))
                await session.execute(sa.text(f'ALTER TABLE {LOG_TABLE} DETACH PARTITION "{name}"'))


async def _drop_partition(session: AsyncSession, name: str) -> None:
    await session.execute(sa.text(f'DROP TABLE "{name}"'))
