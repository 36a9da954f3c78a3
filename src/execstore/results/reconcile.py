"""The results part of the reconciler: result archive rows and blobs under ``results/``.

Pointer rows do not store their blob key: it is derived from the job (organization,
``created_at`` month, id) and the row's codec, and a blob key maps back to its job
(:func:`~execstore.results.format.parse_result_key`), so both directions stay one
primary-key lookup.

A row whose blob is missing is marked in the job's summary (``"a": 2``), so ``detail()``
raises ArchiveMissing at once, without a blob request; ``summary()`` and
``screenshots()`` keep working. Blobs of jobs that still hold a legacy result are
"pending": a crashed archival batch left them and its re-run reuses them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.archival import ArchiveTotals, Pointer
from execstore.errors import translate_database_errors
from execstore.results.backfill import legacy_result_filter
from execstore.results.format import (
    ARCHIVE_LOST,
    ARCHIVED,
    RESULTS_PREFIX,
    is_summary,
    parse_result_key,
    ref_from_row,
)
from execstore.schema import models as m

__all__ = ["ResultArchives"]


class ResultArchives:
    """Result archives as an :class:`~execstore.archival.ArchiveKind`."""

    name = "results"
    prefix = RESULTS_PREFIX

    def organization_prefix(self, organization_id: uuid.UUID) -> str:
        """``results/<org>/``."""
        return f"{RESULTS_PREFIX}{organization_id}/"

    async def pointers(
        self,
        session: AsyncSession,
        *,
        after: Any,
        limit: int,
        organization_id: uuid.UUID | None,
    ) -> tuple[list[Pointer], Any]:
        """Result archive rows in job order, with the job's summary as the row handle."""
        stmt = (
            sa.select(m.JobResultArchive, m.Job.result, m.Job.organization_id, m.Job.created_at)
            .join(m.Job, m.Job.id == m.JobResultArchive.job_id)
            .order_by(m.JobResultArchive.job_id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(m.JobResultArchive.job_id > after)
        if organization_id is not None:
            stmt = stmt.where(m.Job.organization_id == organization_id)
        with translate_database_errors():
            rows = (await session.execute(stmt)).all()
        pointers = [
            Pointer(
                ref=ref_from_row(archive, organization_id=org, created_at=created_at),
                marked_lost=is_summary(result) and result.get("a") == ARCHIVE_LOST,
                row=(archive.job_id, result),
            )
            for archive, result, org, created_at in rows
        ]
        return pointers, (rows[-1][0].job_id if rows else after)

    async def referenced(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """The keys a ``job_result_archives`` row points at (looked up by the key's job)."""
        named = {key: parsed for key in keys if (parsed := parse_result_key(key)) is not None}
        if not named:
            return set()
        jobs = {job for _, job in named.values()}
        with translate_database_errors():
            rows = (
                await session.execute(
                    sa.select(m.JobResultArchive, m.Job.organization_id, m.Job.created_at)
                    .join(m.Job, m.Job.id == m.JobResultArchive.job_id)
                    .where(m.JobResultArchive.job_id.in_(jobs))
                )
            ).all()
        pointed = {
            ref_from_row(archive, organization_id=org, created_at=created_at).key
            for archive, org, created_at in rows
        }
        return pointed & set(named)

    async def pending(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """Blobs of jobs whose legacy result is still waiting for the archival job."""
        by_job: dict[uuid.UUID, list[str]] = {}
        for key in keys:
            if (named := parse_result_key(key)) is not None:
                by_job.setdefault(named[1], []).append(key)
        if not by_job:
            return set()
        dialect = session.get_bind().dialect.name
        with translate_database_errors():
            waiting = await session.scalars(
                sa.select(m.Job.id).where(m.Job.id.in_(list(by_job)), legacy_result_filter(dialect))
            )
        return {key for job in waiting.all() for key in by_job[job]}

    async def mark(self, session: AsyncSession, pointer: Pointer, *, lost: bool) -> None:
        """Set the summary's archive state to lost (2) or archived (1)."""
        job_id, result = pointer.row
        if not is_summary(result):
            return
        state = ARCHIVE_LOST if lost else ARCHIVED
        with translate_database_errors():
            await session.execute(
                sa.update(m.Job).where(m.Job.id == job_id).values(result={**result, "a": state})
            )

    async def totals(
        self, session: AsyncSession, *, organization_id: uuid.UUID | None = None
    ) -> ArchiveTotals:
        """Result archives: one blob and one document per archived job."""
        rows = m.JobResultArchive
        stmt = sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(rows.stored_size), 0),
            sa.func.coalesce(sa.func.sum(rows.raw_size), 0),
        ).select_from(rows)
        if organization_id is not None:
            stmt = stmt.join(m.Job, m.Job.id == rows.job_id).where(
                m.Job.organization_id == organization_id
            )
        with translate_database_errors():
            count, stored, raw = (await session.execute(stmt)).one()
        return ArchiveTotals(int(count), int(count), int(stored), int(raw))
