"""Archive legacy job results: full JSON out of ``jobs.result``, into a blob and rows.

For every job whose ``result`` still holds a legacy full output (no summary mark), one
batch transaction:

1. claims the jobs (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers
   can run side by side; SQLite has a single writer, so run one worker there: a second
   one waits for the write lock or fails with "database is locked");
2. uploads each job's full output to its deterministic key under its own organization
   (``results/<org>/<yyyy>/<mm>/<job>/result.json.gz``);
3. inserts the ``job_result_archives`` rows and one ``execution_screenshots`` row per
   screenshot (from the JSON and from ``execution_screenshots_legacy``, whose rows are
   then deleted), and rewrites ``result`` as the summary;
4. commits.

A kill at any point is safe: before the commit nothing in the database changed, and the
re-run produces the same bytes for the same key, so the create-only put is a no-op and
nothing is written twice. Blobs of a batch that never committed stay until the re-run
claims them (the reconciler reports them as "pending", never as orphans).

Legacy screenshot rows whose URL is not already in the JSON are added to the archived
document under ``legacyScreenshotRows`` so the archive holds every fact the database
held. Bytes are measured with ``pg_column_size`` on PostgreSQL and the length of the
JSON text on SQLite.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.blob import Archives
from execstore.blob.codec import serialize
from execstore.errors import translate_database_errors
from execstore.repository import TransactionHooks
from execstore.results.format import (
    ARCHIVED,
    ScreenshotRow,
    ScreenshotUrls,
    archive_values,
    as_utc,
    jsonable,
    result_archive_key,
    screenshot_rows,
    summarize,
)
from execstore.schema import models as m

__all__ = [
    "ResultArchivalReport",
    "archive_job_results",
    "count_legacy_results",
    "forget_result_archive",
    "legacy_result_filter",
]

LEGACY_SCREENSHOTS_KEY: Final = "legacyScreenshotRows"
# Uploads of one batch run concurrently, but bounded: a batch of 500 must not open 500
# connections to the blob service.
_UPLOAD_CONCURRENCY: Final = 16
_legacy = m.execution_screenshots_legacy
_jobs: sa.Table = m.Job.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class ResultArchivalReport:
    """What an archival run did (or, with ``dry_run``, would do)."""

    dry_run: bool = False
    batches: int = 0
    jobs_archived: int = 0
    screenshots_moved: int = 0
    legacy_rows_moved: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    archive_bytes: int = 0

    @property
    def bytes_freed(self) -> int:
        """How many bytes of ``jobs.result`` the run freed (or would free)."""
        return self.bytes_before - self.bytes_after


def legacy_result_filter(dialect: str) -> sa.ColumnElement[bool]:
    """SQL that is true for jobs whose ``result`` is a legacy full output (an object, unmarked)."""
    if dialect == "postgresql":
        return sa.and_(
            sa.func.jsonb_typeof(m.Job.result) == "object",
            sa.text("(jobs.result -> '_v') IS NULL"),
        )
    return sa.and_(
        sa.func.json_type(m.Job.result) == "object",
        sa.func.json_extract(m.Job.result, "$._v").is_(None),
    )


def _result_size(dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.func.pg_column_size(m.Job.result)
    return sa.func.length(sa.cast(m.Job.result, sa.Text))


async def count_legacy_results(
    sessions: async_sessionmaker[AsyncSession], *, organization_id: uuid.UUID | None = None
) -> int:
    """How many jobs (of ``organization_id``, or all) still hold a legacy result."""
    async with sessions() as session:
        dialect = session.get_bind().dialect.name
        with translate_database_errors():
            found = await session.scalar(
                sa.select(sa.func.count())
                .select_from(m.Job)
                .where(legacy_result_filter(dialect))
                .where(
                    sa.true()
                    if organization_id is None
                    else m.Job.organization_id == organization_id
                )
            )
    return int(found or 0)


@dataclass(frozen=True, slots=True)
class _Candidate:
    job_id: uuid.UUID
    organization_id: uuid.UUID
    created_at: Any
    result: dict[str, Any]
    size: int


async def archive_job_results(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    *,
    batch_size: int = 200,
    limit: int | None = None,
    dry_run: bool = False,
    organization_id: uuid.UUID | None = None,
    screenshot_urls: ScreenshotUrls | None = None,
    on_batch: Callable[[ResultArchivalReport], None] | None = None,
) -> ResultArchivalReport:
    """The report of archiving up to ``limit`` legacy results, ``batch_size`` jobs per commit.

    Works across organizations (or only ``organization_id``'s jobs). With ``dry_run``
    nothing is written or uploaded and the report says how many jobs and bytes a real
    run would move. ``on_batch`` is called
    with the running totals after every batch.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    urls = screenshot_urls or ScreenshotUrls()
    report = ResultArchivalReport(dry_run=dry_run)
    after: uuid.UUID | None = None
    while limit is None or report.jobs_archived < limit:
        size = batch_size if limit is None else min(batch_size, limit - report.jobs_archived)
        async with sessions() as session:
            with translate_database_errors():
                async with session.begin():
                    batch = await _claim(
                        session, size, after, org=organization_id, lock=not dry_run
                    )
                    if not batch:
                        break
                    after = batch[-1].job_id
                    if dry_run:
                        step = await _measure_only(session, batch, urls)
                    else:
                        step = await _archive_batch(session, archives, batch, urls)
        report = _add(report, step)
        if on_batch is not None:
            on_batch(report)
    return report


async def _claim(
    session: AsyncSession,
    size: int,
    after: uuid.UUID | None,
    *,
    org: uuid.UUID | None,
    lock: bool,
) -> list[_Candidate]:
    dialect = session.get_bind().dialect.name
    stmt = (
        sa.select(
            m.Job.id,
            m.Job.organization_id,
            m.Job.created_at,
            m.Job.result,
            _result_size(dialect),
        )
        .where(legacy_result_filter(dialect))
        .order_by(m.Job.id)
        .limit(size)
    )
    if after is not None:
        # Keyset paging: a job this run could not finish is not claimed again and again.
        stmt = stmt.where(m.Job.id > after)
    if org is not None:
        stmt = stmt.where(m.Job.organization_id == org)
    if lock and dialect == "postgresql":
        stmt = stmt.with_for_update(of=m.Job, skip_locked=True)
    rows = (await session.execute(stmt)).all()
    return [_Candidate(r[0], r[1], r[2], r[3], int(r[4] or 0)) for r in rows]


async def _legacy_rows(session: AsyncSession, job_ids: Sequence[uuid.UUID]) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    rows = await session.execute(
        sa.select(_legacy)
        .where(_legacy.c.job_id.in_([str(j) for j in job_ids]))
        .order_by(_legacy.c.job_id, _legacy.c.captured_at, _legacy.c.id)
    )
    for row in rows:
        found.setdefault(str(row.job_id), []).append(row)
    return found


def _plan(
    job: _Candidate, legacy_rows: list[Any], urls: ScreenshotUrls, first_ordinal: int
) -> tuple[dict[str, Any], dict[str, Any], list[ScreenshotRow]]:
    """The archived document, the summary and the screenshot rows of one legacy job."""
    document: dict[str, Any] = jsonable(job.result)
    shots = document.get("screenshots")
    listed = shots if isinstance(shots, list) else []
    fallback = as_utc(job.created_at)
    rows = screenshot_rows(
        listed,
        urls=urls,
        organization_id=job.organization_id,
        job_id=job.job_id,
        fallback_time=fallback,
        start=first_ordinal,
    )
    known = {shot.get("url") for shot in listed if isinstance(shot, dict)}
    extra = [
        {
            "id": row.id,
            "stepIndex": row.step_index,
            "url": row.url,
            "width": row.width,
            "height": row.height,
            "capturedAt": as_utc(row.captured_at).isoformat(),
        }
        for row in legacy_rows
        if row.url not in known
    ]
    if extra:
        document[LEGACY_SCREENSHOTS_KEY] = extra
        rows += screenshot_rows(
            extra,
            urls=urls,
            organization_id=job.organization_id,
            job_id=job.job_id,
            fallback_time=fallback,
            start=first_ordinal + len(rows),
        )
    summary = summarize(document, state=ARCHIVED)
    summary["sc"] = len(listed) + len(extra)
    return document, summary, rows


async def _first_ordinals(session: AsyncSession, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    # Rows that already exist for a job (written by another path) keep their ordinals.
    shot = m.ExecutionScreenshot
    found = await session.execute(
        sa.select(shot.job_id, sa.func.max(shot.ordinal))
        .where(shot.job_id.in_(job_ids))
        .group_by(shot.job_id)
    )
    return {job_id: int(top) + 1 for job_id, top in found}


async def _archive_batch(
    session: AsyncSession,
    archives: Archives,
    batch: list[_Candidate],
    urls: ScreenshotUrls,
) -> ResultArchivalReport:
    ids = [job.job_id for job in batch]
    legacy = await _legacy_rows(session, ids)
    firsts = await _first_ordinals(session, ids)
    plans = [
        _plan(job, legacy.get(str(job.job_id), []), urls, firsts.get(job.job_id, 0))
        for job in batch
    ]
    gate = asyncio.Semaphore(_UPLOAD_CONCURRENCY)

    async def upload(job: _Candidate, document: dict[str, Any]) -> Any:
        key = result_archive_key(job.organization_id, job.job_id, job.created_at, archives.codec)
        async with gate:
            return (await archives.store_document(key, document)).ref

    refs = await asyncio.gather(
        *(upload(job, plan[0]) for job, plan in zip(batch, plans, strict=True))
    )
    await session.execute(
        sa.insert(m.JobResultArchive),
        [archive_values(job.job_id, ref) for job, ref in zip(batch, refs, strict=True)],
    )
    shot_values = [
        row.values(job.job_id) for job, plan in zip(batch, plans, strict=True) for row in plan[2]
    ]
    if shot_values:
        await session.execute(sa.insert(m.ExecutionScreenshot), shot_values)
    await session.execute(
        # Core executemany: one round trip for the batch, types from the table's columns.
        sa.update(_jobs)
        .where(_jobs.c.id == sa.bindparam("job_key"))
        .values(result=sa.bindparam("summary")),
        [
            {"job_key": job.job_id, "summary": plan[1]}
            for job, plan in zip(batch, plans, strict=True)
        ],
    )
    moved = sum(len(rows) for rows in legacy.values())
    if moved:
        await session.execute(sa.delete(_legacy).where(_legacy.c.job_id.in_([str(j) for j in ids])))
    dialect = session.get_bind().dialect.name
    after = await session.scalar(
        sa.select(sa.func.sum(_result_size(dialect))).where(m.Job.id.in_(ids))
    )
    return ResultArchivalReport(
        batches=1,
        jobs_archived=len(batch),
        screenshots_moved=len(shot_values),
        legacy_rows_moved=moved,
        bytes_before=sum(job.size for job in batch),
        bytes_after=int(after or 0),
        archive_bytes=sum(ref.stored_size for ref in refs),
    )


async def _measure_only(
    session: AsyncSession, batch: list[_Candidate], urls: ScreenshotUrls
) -> ResultArchivalReport:
    legacy = await _legacy_rows(session, [job.job_id for job in batch])
    plans = [_plan(job, legacy.get(str(job.job_id), []), urls, 0) for job in batch]
    texts = [serialize(plan[1]) for plan in plans]
    if session.get_bind().dialect.name == "postgresql":
        after = await session.scalar(
            sa.text(
                "SELECT coalesce(sum(pg_column_size(x::jsonb)), 0)"
                " FROM unnest(CAST(:docs AS text[])) AS x"
            ),
            {"docs": texts},
        )
    else:
        after = sum(len(text) for text in texts)
    return ResultArchivalReport(
        dry_run=True,
        batches=1,
        jobs_archived=len(batch),
        screenshots_moved=sum(len(plan[2]) for plan in plans),
        legacy_rows_moved=sum(len(rows) for rows in legacy.values()),
        bytes_before=sum(job.size for job in batch),
        bytes_after=int(after or 0),
    )


def _add(total: ResultArchivalReport, step: ResultArchivalReport) -> ResultArchivalReport:
    return replace(
        total,
        batches=total.batches + step.batches,
        jobs_archived=total.jobs_archived + step.jobs_archived,
        screenshots_moved=total.screenshots_moved + step.screenshots_moved,
        legacy_rows_moved=total.legacy_rows_moved + step.legacy_rows_moved,
        bytes_before=total.bytes_before + step.bytes_before,
        bytes_after=total.bytes_after + step.bytes_after,
        archive_bytes=total.archive_bytes + step.archive_bytes,
    )


def forget_result_archive(archives: Archives) -> Any:
    """The job-deletion step of results: the job's result blob goes after the commit."""

    async def forget(
        session: AsyncSession, job_id: uuid.UUID, hooks: TransactionHooks | None
    ) -> list[str]:
        with translate_database_errors():
            keys = list(
                (
                    await session.scalars(
                        sa.select(m.JobResultArchive.blob_key).where(
                            m.JobResultArchive.job_id == job_id
                        )
                    )
                ).all()
            )
        if hooks is not None:
            for key in keys:
                hooks.on_commit(functools.partial(archives.delete, key))
        return keys

    return forget
