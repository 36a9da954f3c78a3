"""Delete archived logs past their organization's retention: ``execstore retention run``
(:func:`execstore.operations.apply_retention` for ``logs``).

An organization's retention is its row in ``execution_log_retention`` (set with
``uow.logs.set_retention`` or ``execstore retention set``), else
``EXECSTORE_LOG_RETENTION_DAYS`` (365). A chunk whose newest line is older than that
is deleted: its blob first, then its pointer row, so a crash in between leaves a row
whose blob is gone (the next run deletes the row; the reconciler reports it as lost
meanwhile) and never a blob nobody can find. Batches of pointer rows are claimed with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of runs can go side by side
(and a chunk being rewritten by a job deletion is left for the next run).

A stored retention shorter than the hot window (possible if ``EXECSTORE_LOG_HOT_DAYS``
grew after it was set) is not applied: the organization is set aside and reported.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.blob import Archives
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import translate_database_errors
from execstore.logs.ingest import sqlite_write_lock
from execstore.operations.batch import BatchReport, Progress, describe_failure
from execstore.schema import models as m

__all__ = ["expire_log_chunks"]

_archive = m.ExecutionLogArchive
_setting = m.ExecutionLogRetention


async def expire_log_chunks(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    report: BatchReport,
    *,
    default_days: int = 365,
    hot_days: int = 30,
    organization_id: uuid.UUID | None = None,
    batch_size: int = 200,
    on_progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> None:
    """Delete every archive chunk past its organization's retention, into ``report``.

    A chunk is past it when its newest line is older than the clock's now minus the
    retention. Adds to the retention counts (``organizations``, ``archives``,
    ``records``, ``bytes``); a chunk whose blob cannot be deleted, or an organization
    whose retention is shorter than ``hot_days``, is set aside.
    """
    moment = clock.now()
    for org, days in await _retentions(sessions, default_days, organization_id):
        report.add(organizations=1)
        if days < hot_days:
            report.aside(
                f"organization {org}",
                f"InvalidRetention: its retention of {days} days is shorter than the hot "
                f"window of {hot_days} days; set a longer one (execstore retention set)",
            )
            continue
        cutoff = moment - dt.timedelta(days=days)
        await _expire(sessions, archives, org, cutoff, report, batch_size, on_progress)


async def _retentions(
    sessions: async_sessionmaker[AsyncSession],
    default_days: int,
    organization_id: uuid.UUID | None,
) -> list[tuple[uuid.UUID, int]]:
    orgs = sa.select(_archive.organization_id).distinct()
    if organization_id is not None:
        orgs = orgs.where(_archive.organization_id == organization_id)
    async with sessions() as session:
        with translate_database_errors():
            found = list((await session.scalars(orgs)).all())
            own = dict(
                (
                    await session.execute(
                        sa.select(_setting.organization_id, _setting.retention_days)
                    )
                ).all()
            )
    return [(org, own.get(org, default_days)) for org in sorted(found, key=str)]


async def _expire(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    org: uuid.UUID,
    cutoff: dt.datetime,
    report: BatchReport,
    batch_size: int,
    on_progress: Progress | None,
) -> None:
    after: int | None = None
    while True:
        async with sessions() as session:
            with translate_database_errors():
                async with session.begin():
                    if not report.dry_run:
                        await sqlite_write_lock(session)
                    stmt = (
                        sa.select(
                            _archive.id,
                            _archive.blob_key,
                            _archive.record_count,
                            _archive.stored_size,
                        )
                        .where(_archive.organization_id == org, _archive.end_date < cutoff)
                        .order_by(_archive.id)
                        .limit(batch_size)
                    )
                    if after is not None:
                        stmt = stmt.where(_archive.id > after)
                    if not report.dry_run and session.get_bind().dialect.name == "postgresql":
                        stmt = stmt.with_for_update(skip_locked=True)
                    batch = (await session.execute(stmt)).all()
                    if not batch:
                        return
                    after = batch[-1].id
                    for row in batch:
                        if not report.dry_run and not await _forget(session, archives, row, report):
                            continue
                        report.add(archives=1, records=row.record_count, bytes=row.stored_size)
        if on_progress is not None:
            on_progress(report.counts["archives"], None)


async def _forget(session: AsyncSession, archives: Archives, row: Any, report: BatchReport) -> bool:
    try:
        await _delete_blob(archives, row.blob_key)
    except Exception as exc:  # one blob the store refuses must not stop the rest
        report.aside(row.blob_key, describe_failure(exc))
        return False
    await _delete_pointer(session, row.id)
    return True


# One function per step, so a test can make either fail (a crash between the two).


async def _delete_blob(archives: Archives, key: str) -> None:
    await archives.delete(key)


async def _delete_pointer(session: AsyncSession, pointer_id: int) -> None:
    await session.execute(sa.delete(_archive).where(_archive.id == pointer_id))
