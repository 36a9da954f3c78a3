"""Backfill legacy job results (``execstore backfill results``): full JSON out of
``jobs.result``, into a blob and rows, once per job.

For every job whose ``result`` still holds a legacy full output (not an execstore
summary), one batch transaction:

1. claims the jobs (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so any number of workers
   can run side by side; SQLite has a single writer, so run one worker there: a second
   one waits for the write lock or fails with "database is locked");
2. prepares each job: its JSON must be a JSON value under the contract of
   :mod:`execstore.jsonvalues` (nothing is coerced), and its legacy screenshot rows are
   found through the one legacy-id mapping (:func:`execstore.ids.legacy_uuid`), so a
   job whose legacy id was a cuid, an upper-case or a braced uuid finds them too;
3. uploads each job's full output to its deterministic key under its own organization
   (``results/<org>/<yyyy>/<mm>/<job>/result.json.gz``);
4. inserts the ``job_result_archives`` rows and one ``execution_screenshots`` row per
   screenshot (from the JSON and from ``execution_screenshots_legacy``, whose rows are
   then deleted), and rewrites ``result`` as the summary;
5. commits.

A job that cannot be archived — JSON that breaks the contract (NaN, too deep, ...), a
different blob already at its key, rows the database refuses — is *set aside*: reported
by id with the reason, counted, left exactly as it was (result and legacy screenshot
rows), and tried again on the next run; the rest of the batch and of the run goes on.
Failures of the services themselves (blob store, database) stop the run with their
error; a re-run resumes.

A kill at any point is safe: before the commit nothing in the database changed, and the
re-run produces the same bytes for the same key, so the create-only put is a no-op and
nothing is written twice. Blobs of a batch that never committed (or of a job set aside
after its upload) stay until a run archives the job (the reconciler reports them as
"pending", never as orphans).

A run (not a dry run) that leaves no legacy result anywhere and set nothing aside records
the backfill's completion (:mod:`execstore.operations.backfills`); the per-job state is
the result itself (a summary, not a legacy output, once moved).

Legacy screenshot rows whose URL is not already in the JSON are added to the archived
document under ``legacyScreenshotRows`` (a list of ``{id, stepIndex, url, width, height,
capturedAt}``) so the archive holds every fact the database held. Bytes are measured
with ``pg_column_size`` on PostgreSQL and the length of the JSON text on SQLite.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.blob import ArchiveRef, Archives
from execstore.blob.codec import serialize
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import ArchiveConflict, InvalidArgument, translate_database_errors
from execstore.ids import legacy_uuid, legacy_uuid_sql
from execstore.jsonvalues import check_json
from execstore.operations.backfills import finish_backfill
from execstore.operations.batch import (
    BatchReport,
    Progress,
    SetAside,
    describe_failure,
    write_each,
)
from execstore.repository import TransactionHooks
from execstore.results.format import (
    ARCHIVED,
    ScreenshotRow,
    ScreenshotUrls,
    archive_values,
    as_utc,
    ref_from_row,
    result_archive_key,
    screenshot_rows,
    summarize,
)
from execstore.schema import models as m
from execstore.schema.results import LEGACY_JOB_UUID_SQL

__all__ = [
    "COUNTS",
    "LEGACY_SCREENSHOTS_KEY",
    "backfill_results",
    "count_remaining",
    "forget_result_archive",
    "legacy_result_filter",
]

LEGACY_SCREENSHOTS_KEY: Final = "legacyScreenshotRows"
# Uploads of one batch run concurrently, but bounded: a batch of 500 must not open 500
# connections to the blob service.
_UPLOAD_CONCURRENCY: Final = 16
_legacy = m.execution_screenshots_legacy
_jobs: sa.Table = m.Job.__table__  # type: ignore[assignment]


COUNTS: Final = (
    "batches",
    "examined",
    "moved",
    "screenshots",
    "legacy_screenshot_rows",
    "bytes_before",
    "bytes_after",
    "archive_bytes",
    "remaining",
)
"""The counts of a ``backfill results`` report: jobs examined (moved or set aside), jobs
moved, screenshot rows written, legacy screenshot rows moved, ``jobs.result`` bytes of
the moved jobs before and after, compressed bytes archived, legacy results left."""


def legacy_result_filter(dialect: str) -> sa.TextClause:
    """SQL that is true for jobs whose ``result`` is a legacy full output.

    Legacy means: a JSON object that is not an execstore summary (whose ``_v`` is the
    number 1), the same rule as :func:`~execstore.results.format.is_summary`. On SQLite
    text that is not valid JSON counts too, so the archival job sets it aside and says
    so instead of skipping it silently.
    """
    if dialect == "postgresql":
        return sa.text(
            "jsonb_typeof(jobs.result) = 'object' "
            "AND (jobs.result -> '_v') IS DISTINCT FROM '1'::jsonb"
        )
    return sa.text(
        "jobs.result IS NOT NULL AND CASE WHEN json_valid(jobs.result) THEN "
        "json_type(jobs.result) = 'object' AND NOT ("
        "coalesce(json_type(jobs.result, '$._v') IN ('integer', 'real'), 0) "
        "AND json_extract(jobs.result, '$._v') = 1) ELSE 1 END"
    )


def _result_size(dialect: str) -> Any:
    if dialect == "postgresql":
        return sa.func.pg_column_size(m.Job.result)
    return sa.func.length(sa.cast(m.Job.result, sa.Text))


def _legacy_job_uuid(dialect: str) -> sa.ColumnElement[Any]:
    """``legacy_uuid(execution_screenshots_legacy.job_id)`` as SQL.

    On PostgreSQL it is the indexed expression itself (constants inline, so the planner
    matches it to the expression index whatever plan it caches).
    """
    if dialect == "postgresql":
        return sa.literal_column(f"({LEGACY_JOB_UUID_SQL})", type_=sa.Uuid())
    return legacy_uuid_sql(_legacy.c.job_id, dialect)


async def count_remaining(
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
    text: str
    size: int


@dataclass(frozen=True, slots=True)
class _Plan:
    """One job ready to archive: its document, summary and screenshot rows."""

    job: _Candidate
    document: dict[str, Any]
    summary: dict[str, Any]
    rows: list[ScreenshotRow]
    legacy_rows: int


async def backfill_results(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    *,
    batch_size: int = 200,
    limit: int | None = None,
    dry_run: bool = False,
    organization_id: uuid.UUID | None = None,
    screenshot_urls: ScreenshotUrls | None = None,
    on_progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> BatchReport:
    """The report of moving up to ``limit`` legacy results, ``batch_size`` jobs per commit.

    Works across organizations (or only ``organization_id``'s jobs). Jobs that cannot
    be moved are set aside and the run goes on; ``limit`` counts them too. With
    ``dry_run`` nothing is written or uploaded and the report says how many jobs and
    bytes a real run would move and which jobs it would set aside. Every legacy result
    is due whatever its age; ``clock`` stamps the pointer rows.
    """
    if batch_size < 1:
        raise InvalidArgument("batch_size must be at least 1")
    urls = screenshot_urls or ScreenshotUrls()
    report = BatchReport.start("backfill results", *COUNTS, dry_run=dry_run)
    total = None
    if on_progress is not None:
        total = await count_remaining(sessions, organization_id=organization_id)
        total = total if limit is None else min(total, limit)
    after: uuid.UUID | None = None
    while limit is None or report.counts["examined"] < limit:
        seen = report.counts["examined"]
        size = batch_size if limit is None else min(batch_size, limit - seen)
        async with sessions() as session:
            with translate_database_errors():
                async with session.begin():
                    batch = await _claim(
                        session, size, after, org=organization_id, lock=not dry_run
                    )
                    if not batch:
                        break
                    # Keyset paging: a job set aside is not claimed again in this run.
                    after = batch[-1].job_id
                    if dry_run:
                        step = await _measure_only(session, batch, urls)
                    else:
                        step = await _archive_batch(session, archives, batch, urls, clock)
        report.add(**step.counts, examined=len(batch), batches=1)
        report.set_aside += sorted(step.set_aside, key=lambda item: item.key)
        if on_progress is not None:
            on_progress(report.counts["examined"], total)
    await finish_backfill(
        sessions,
        report,
        "results",
        remaining=await count_remaining(sessions, organization_id=organization_id),
        everywhere=None if organization_id is None else await count_remaining(sessions),
        legacy_table=_legacy.name,
        clock=clock,
    )
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
            # Text, decoded per job: one undecodable result must not fail the batch.
            sa.cast(m.Job.result, sa.Text),
            _result_size(dialect),
        )
        .where(legacy_result_filter(dialect))
        .order_by(m.Job.id)
        .limit(size)
    )
    if after is not None:
        stmt = stmt.where(m.Job.id > after)
    if org is not None:
        stmt = stmt.where(m.Job.organization_id == org)
    if lock and dialect == "postgresql":
        stmt = stmt.with_for_update(of=m.Job, skip_locked=True)
    rows = (await session.execute(stmt)).all()
    return [_Candidate(r[0], r[1], r[2], r[3], int(r[4] or 0)) for r in rows]


async def _legacy_rows(
    session: AsyncSession, job_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Any]]:
    """The legacy screenshot rows of ``job_ids``, by job, matched through ``legacy_uuid``."""
    if not job_ids:
        return {}
    dialect = session.get_bind().dialect.name
    wanted = list(job_ids) if dialect == "postgresql" else [str(j) for j in job_ids]
    found: dict[uuid.UUID, list[Any]] = {}
    rows = await session.execute(
        sa.select(_legacy)
        .where(_legacy_job_uuid(dialect).in_(wanted))
        .order_by(_legacy.c.captured_at, _legacy.c.id)
    )
    for row in rows:
        found.setdefault(legacy_uuid(row.job_id), []).append(row)
    return found


def _plan(
    job: _Candidate, legacy_rows: list[Any], urls: ScreenshotUrls, first_ordinal: int
) -> _Plan:
    """The archived document, summary and screenshot rows of one legacy job.

    Raises (ValueError, RecursionError, InvalidJsonValue) when the job cannot be
    archived as it is; the caller sets it aside.
    """
    try:
        document = json.loads(job.text)
    except RecursionError:
        raise ValueError("result is nested too deep to decode") from None
    if type(document) is not dict:
        raise ValueError(f"result is not a JSON object but {type(document).__name__}")
    check_json(document)
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
    known = {shot.get("url") for shot in listed if isinstance(shot, dict)} - {None}
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
        if not (isinstance(row.url, str) and row.url in known)
    ]
    if extra:
        if LEGACY_SCREENSHOTS_KEY in document:
            # Never overwrite a key of the output: the archive must hold both.
            raise ValueError(f"the output already has a {LEGACY_SCREENSHOTS_KEY!r} key")
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
    return _Plan(job, document, summary, rows, len(legacy_rows))


def _plan_all(
    batch: list[_Candidate],
    legacy: dict[uuid.UUID, list[Any]],
    urls: ScreenshotUrls,
    firsts: dict[uuid.UUID, int],
) -> tuple[list[_Plan], list[SetAside]]:
    plans: list[_Plan] = []
    aside: list[SetAside] = []
    for job in batch:
        try:
            plans.append(_plan(job, legacy.get(job.job_id, []), urls, firsts.get(job.job_id, 0)))
        except (ValueError, RecursionError) as exc:  # InvalidJsonValue is a ValueError
            aside.append(SetAside(str(job.job_id), describe_failure(exc)))
    return plans, aside


async def _first_ordinals(session: AsyncSession, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    # Rows that already exist for a job (written by another path) keep their ordinals.
    shot = m.ExecutionScreenshot
    found = await session.execute(
        sa.select(shot.job_id, sa.func.max(shot.ordinal))
        .where(shot.job_id.in_(job_ids))
        .group_by(shot.job_id)
    )
    return {job_id: int(top) + 1 for job_id, top in found}


async def _upload_all(
    archives: Archives, plans: list[_Plan]
) -> tuple[list[tuple[_Plan, ArchiveRef]], list[SetAside]]:
    """Upload every plan's document; a job whose key holds other bytes is set aside."""
    gate = asyncio.Semaphore(_UPLOAD_CONCURRENCY)

    async def upload(plan: _Plan) -> ArchiveRef:
        job = plan.job
        key = result_archive_key(job.organization_id, job.job_id, job.created_at, archives.codec)
        async with gate:
            return (await archives.store_document(key, plan.document)).ref

    # Every upload finishes (or fails) before this returns: none is left running.
    outcomes = await asyncio.gather(*(upload(plan) for plan in plans), return_exceptions=True)
    done: list[tuple[_Plan, ArchiveRef]] = []
    aside: list[SetAside] = []
    for plan, outcome in zip(plans, outcomes, strict=True):
        if isinstance(outcome, ArchiveConflict):
            aside.append(SetAside(str(plan.job.job_id), describe_failure(outcome)))
        elif isinstance(outcome, BaseException):
            raise outcome  # the blob service failed: stop; a re-run resumes
        else:
            done.append((plan, outcome))
    return done, aside


async def _archive_batch(
    session: AsyncSession,
    archives: Archives,
    batch: list[_Candidate],
    urls: ScreenshotUrls,
    clock: Clock,
) -> BatchReport:
    dialect = session.get_bind().dialect.name
    ids = [job.job_id for job in batch]
    legacy = await _legacy_rows(session, ids)
    firsts = await _first_ordinals(session, ids)
    plans, aside = _plan_all(batch, legacy, urls, firsts)
    uploaded, refused = await _upload_all(archives, plans)
    aside += refused

    async def write(items: Sequence[tuple[_Plan, ArchiveRef]]) -> None:
        now = clock.now()
        await session.execute(
            sa.insert(m.JobResultArchive),
            [archive_values(plan.job.job_id, ref, archived_at=now) for plan, ref in items],
        )
        shots = [row.values(plan.job.job_id) for plan, _ in items for row in plan.rows]
        if shots:
            await session.execute(sa.insert(m.ExecutionScreenshot), shots)
        await session.execute(
            # Core executemany: one round trip for the batch, types from the table's columns.
            sa.update(_jobs)
            .where(_jobs.c.id == sa.bindparam("job_key"))
            .values(result=sa.bindparam("summary")),
            [{"job_key": plan.job.job_id, "summary": plan.summary} for plan, _ in items],
        )
        moved = [plan.job.job_id for plan, _ in items if plan.legacy_rows]
        if moved:
            wanted = moved if dialect == "postgresql" else [str(j) for j in moved]
            await session.execute(sa.delete(_legacy).where(_legacy_job_uuid(dialect).in_(wanted)))

    written, refused = await write_each(
        session, uploaded, write, lambda item: str(item[0].job.job_id)
    )
    aside += refused
    done = [plan for plan, _ in written]
    after: int | None = 0
    if done:
        after = await session.scalar(
            sa.select(sa.func.sum(_result_size(dialect))).where(
                m.Job.id.in_([plan.job.job_id for plan in done])
            )
        )
    return _step(done, int(after or 0), sum(ref.stored_size for _, ref in written), aside)


async def _measure_only(
    session: AsyncSession, batch: list[_Candidate], urls: ScreenshotUrls
) -> BatchReport:
    legacy = await _legacy_rows(session, [job.job_id for job in batch])
    plans, aside = _plan_all(batch, legacy, urls, {})
    texts = [serialize(plan.summary) for plan in plans]
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
    return _step(plans, int(after or 0), 0, aside)


def _step(done: list[_Plan], after: int, archived: int, aside: list[SetAside]) -> BatchReport:
    """One batch's counts (what :func:`backfill_results` adds to its report)."""
    return BatchReport(
        "backfill results",
        counts={
            "moved": len(done),
            "screenshots": sum(len(plan.rows) for plan in done),
            "legacy_screenshot_rows": sum(plan.legacy_rows for plan in done),
            "bytes_before": sum(plan.job.size for plan in done),
            "bytes_after": after,
            "archive_bytes": archived,
        },
        set_aside=aside,
    )


def forget_result_archive(archives: Archives) -> Any:
    """The job-deletion step of results: the job's result blob goes after the commit."""

    async def forget(
        session: AsyncSession, job_id: uuid.UUID, hooks: TransactionHooks | None
    ) -> list[str]:
        with translate_database_errors():
            rows = (
                await session.execute(
                    sa.select(m.JobResultArchive, m.Job.organization_id, m.Job.created_at)
                    .join(m.Job, m.Job.id == m.JobResultArchive.job_id)
                    .where(m.JobResultArchive.job_id == job_id)
                )
            ).all()
        keys = [
            ref_from_row(archive, organization_id=org, created_at=created_at).key
            for archive, org, created_at in rows
        ]
        if hooks is not None:
            for key in keys:
                hooks.on_commit(functools.partial(archives.delete, key))
        return keys

    return forget
