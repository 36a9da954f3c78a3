"""The results part of the reconciler: result archive rows and blobs under ``results/``.

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
from execstore.results.archival import legacy_result_filter
from execstore.results.format import (
    ARCHIVE_LOST,
    ARCHIVED,
    RESULTS_PREFIX,
    is_summary,
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
            sa.select(m.JobResultArchive, m.Job.result)
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
                ref=ref_from_row(archive),
                marked_lost=is_summary(result) and result.get("a") == ARCHIVE_LOST,
                row=(archive.job_id, result),
            )
            for archive, result in rows
        ]
        return pointers, (rows[-1][0].job_id if rows else after)

    async def referenced(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """The keys a ``job_result_archives`` row points at."""
        if not keys:
            return set()
        with translate_database_errors():
            found = await session.scalars(
                sa.select(m.JobResultArchive.blob_key).where(
                    m.JobResultArchive.blob_key.in_(list(keys))
                )
            )
        return set(found.all())

    async def pending(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """Blobs of jobs whose legacy result is still waiting for the archival job."""
        by_job = {job: key for key in keys if (job := _job_of(key)) is not None}
        if not by_job:
            return set()
        dialect = session.get_bind().dialect.name
        with translate_database_errors():
            waiting = await session.scalars(
                sa.select(m.Job.id).where(m.Job.id.in_(list(by_job)), legacy_result_filter(dialect))
            )
        return {by_job[job] for job in waiting.all()}

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
            sa.func.coalesce(sa.func.sum(rows.record_count), 0),
            sa.func.coalesce(sa.func.sum(rows.stored_size), 0),
            sa.func.coalesce(sa.func.sum(rows.raw_size), 0),
        ).select_from(rows)
        if organization_id is not None:
            stmt = stmt.join(m.Job, m.Job.id == rows.job_id).where(
                m.Job.organization_id == organization_id
            )
        with translate_database_errors():
            count, records, stored, raw = (await session.execute(stmt)).one()
        return ArchiveTotals(int(count), int(records), int(stored), int(raw))


def _job_of(key: str) -> uuid.UUID | None:
    # results/<org>/<yyyy>/<mm>/<job>/result.json.gz
    parts = key.split("/")
    try:
        return uuid.UUID(parts[4]) if len(parts) >= 6 else None
    except ValueError:
        return None
