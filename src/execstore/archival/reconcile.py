"""Keep result archive rows and result blobs in step, in both directions.

Rows without blobs ("lost"): the row is evidence (key, sha256, sizes) and is never
deleted. Repair marks the job's summary (``"a": 2``) so ``detail()`` raises
ArchiveMissing at once, without a blob request, and so the loss shows up in reports;
``summary()`` and ``screenshots()`` keep working. If the blob comes back (restored from a
backup), a repair run finds it and clears the mark ("restored").

Blobs without rows ("orphans") under ``results/``: left by a save or an archival batch
whose transaction never committed and whose rollback hook could not run (a crash, a
kill). Repair deletes them, but only when older than ``grace`` (default one hour; read
from the ``execstore_written_at`` blob metadata every results blob carries; a blob
without it is treated as old) so that an in-flight save between its upload and its
commit is never raced. Blobs of jobs that still hold a legacy result are "pending" (a
crashed archival batch left them; its re-run reuses them) and are not deleted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.archival.result_format import (
    ARCHIVE_LOST,
    ARCHIVED,
    RESULTS_PREFIX,
    WRITTEN_AT_METADATA,
    is_summary,
    parse_time,
    ref_from_row,
)
from execstore.archival.results import legacy_result_filter
from execstore.blob import Archives, BlobInfo
from execstore.errors import ArchiveCorrupt, ArchiveMissing, translate_database_errors
from execstore.schema import models as m

__all__ = ["DEFAULT_GRACE", "ReconcileReport", "reconcile"]

DEFAULT_GRACE: Final = dt.timedelta(hours=1)
_CHECK_CONCURRENCY: Final = 16


@dataclass(slots=True)
class ReconcileReport:
    """What the reconciler found and (with ``repair``) did."""

    repair: bool
    rows_checked: int = 0
    blobs_checked: int = 0
    lost: list[str] = field(default_factory=list)
    """Archive rows whose blob is missing (newly found this run)."""
    still_lost: list[str] = field(default_factory=list)
    """Rows already marked lost whose blob is still missing."""
    restored: list[str] = field(default_factory=list)
    """Rows marked lost whose blob is back."""
    corrupt: list[str] = field(default_factory=list)
    """Blobs that do not match their row's sha256 (only with ``verify``; never deleted)."""
    orphans: list[str] = field(default_factory=list)
    """Blobs under results/ without a row, older than the grace period."""
    young: list[str] = field(default_factory=list)
    """Blobs without a row but younger than the grace period (left alone)."""
    pending: list[str] = field(default_factory=list)
    """Blobs of jobs whose legacy result is still waiting for the archival job."""
    marked: int = 0
    deleted: int = 0

    @property
    def clean(self) -> bool:
        """True when nothing is lost, corrupt or orphaned."""
        return not (self.lost or self.still_lost or self.corrupt or self.orphans)


async def reconcile(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    *,
    repair: bool = False,
    grace: dt.timedelta = DEFAULT_GRACE,
    verify: bool = False,
    organization_id: uuid.UUID | None = None,
    batch_size: int = 500,
    now: dt.datetime | None = None,
) -> ReconcileReport:
    """The report of checking every result archive row and every blob under ``results/``.

    With ``repair`` lost rows are marked (and restored ones unmarked) and orphan blobs
    older than ``grace`` are deleted. ``verify`` also downloads each blob and checks its
    sha256 (slow; corrupt blobs are reported, never deleted). ``organization_id``
    limits both directions to one organization (rows of its jobs, blobs under its prefix).
    """
    report = ReconcileReport(repair=repair)
    await _check_rows(
        sessions, archives, report, verify=verify, org=organization_id, batch_size=batch_size
    )
    cutoff = (now or dt.datetime.now(dt.UTC)) - grace
    prefix = RESULTS_PREFIX if organization_id is None else f"{RESULTS_PREFIX}{organization_id}/"
    await _check_blobs(
        sessions, archives, report, prefix=prefix, cutoff=cutoff, batch_size=batch_size
    )
    return report


async def _check_rows(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    report: ReconcileReport,
    *,
    verify: bool,
    org: uuid.UUID | None,
    batch_size: int,
) -> None:
    gate = asyncio.Semaphore(_CHECK_CONCURRENCY)
    after: uuid.UUID | None = None
    while True:
        async with sessions() as session, session.begin():
            stmt = (
                sa.select(m.JobResultArchive, m.Job.result)
                .join(m.Job, m.Job.id == m.JobResultArchive.job_id)
                .order_by(m.JobResultArchive.job_id)
                .limit(batch_size)
            )
            if after is not None:
                stmt = stmt.where(m.JobResultArchive.job_id > after)
            if org is not None:
                stmt = stmt.where(m.Job.organization_id == org)
            with translate_database_errors():
                rows = (await session.execute(stmt)).all()
            if not rows:
                return
            after = rows[-1][0].job_id

            async def state_of(archive: m.JobResultArchive) -> str:
                async with gate:
                    try:
                        if verify:
                            await archives.verify(ref_from_row(archive))
                        elif not await archives.store.exists(archive.blob_key):
                            return "missing"
                    except ArchiveMissing:
                        return "missing"
                    except ArchiveCorrupt:
                        return "corrupt"
                    return "ok"

            states = await asyncio.gather(*(state_of(row[0]) for row in rows))
            for (archive, result), state in zip(rows, states, strict=True):
                report.rows_checked += 1
                marked_lost = is_summary(result) and result.get("a") == ARCHIVE_LOST
                if state == "missing":
                    (report.still_lost if marked_lost else report.lost).append(archive.blob_key)
                    if report.repair and not marked_lost and is_summary(result):
                        await _set_state(session, archive.job_id, result, ARCHIVE_LOST)
                        report.marked += 1
                elif state == "corrupt":
                    report.corrupt.append(archive.blob_key)
                elif marked_lost:
                    report.restored.append(archive.blob_key)
                    if report.repair:
                        await _set_state(session, archive.job_id, result, ARCHIVED)


async def _set_state(
    session: AsyncSession, job_id: uuid.UUID, result: dict[str, Any], state: int
) -> None:
    with translate_database_errors():
        await session.execute(
            sa.update(m.Job).where(m.Job.id == job_id).values(result={**result, "a": state})
        )


def _job_of(key: str) -> uuid.UUID | None:
    # results/<org>/<yyyy>/<mm>/<job>/result.json.gz
    parts = key.split("/")
    try:
        return uuid.UUID(parts[4]) if len(parts) >= 6 else None
    except ValueError:
        return None


async def _check_blobs(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    report: ReconcileReport,
    *,
    prefix: str,
    cutoff: dt.datetime,
    batch_size: int,
) -> None:
    batch: list[BlobInfo] = []
    async for info in archives.store.list(prefix):
        batch.append(info)
        if len(batch) >= batch_size:
            await _check_blob_batch(sessions, archives, report, batch, cutoff)
            batch = []
    if batch:
        await _check_blob_batch(sessions, archives, report, batch, cutoff)


async def _check_blob_batch(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    report: ReconcileReport,
    batch: list[BlobInfo],
    cutoff: dt.datetime,
) -> None:
    report.blobs_checked += len(batch)
    keys = [info.key for info in batch]
    async with sessions() as session:
        referenced = await _referenced(session, keys)
        unreferenced = [info for info in batch if info.key not in referenced]
        jobs = {job for info in unreferenced if (job := _job_of(info.key)) is not None}
        waiting: set[uuid.UUID] = set()
        if jobs:
            dialect = session.get_bind().dialect.name
            with translate_database_errors():
                waiting = set(
                    (
                        await session.scalars(
                            sa.select(m.Job.id).where(
                                m.Job.id.in_(jobs), legacy_result_filter(dialect)
                            )
                        )
                    ).all()
                )
    for info in unreferenced:
        if _job_of(info.key) in waiting:
            report.pending.append(info.key)
            continue
        written = parse_time(info.metadata.get(WRITTEN_AT_METADATA))
        if written is not None and written > cutoff:
            report.young.append(info.key)
            continue
        report.orphans.append(info.key)
        if report.repair:
            # Look once more right before deleting: a save may have committed meanwhile.
            async with sessions() as session:
                if await _referenced(session, [info.key]):
                    continue
            if await archives.delete(info.key):
                report.deleted += 1


async def _referenced(session: AsyncSession, keys: list[str]) -> set[str]:
    with translate_database_errors():
        found = await session.scalars(
            sa.select(m.JobResultArchive.blob_key).where(m.JobResultArchive.blob_key.in_(keys))
        )
    return set(found.all())
