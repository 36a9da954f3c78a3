"""The results part of the reconciler: result archive rows and blobs under ``results/``.

Pointer rows do not store their blob key: it is derived from the job (organization,
``created_at`` month, id) and the row's codec, and a blob key maps back to its job
(:func:`~execstore.results.format.parse_result_key`), so both directions stay one
primary-key lookup.

A row whose blob is missing is marked ``lost``, so ``detail()`` raises ArchiveMissing at
once, without a blob request; ``summary()`` and ``screenshots()`` keep working. Blobs of
jobs that still hold a legacy result are "pending": a crashed archival batch left them
and its re-run reuses them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.archival import PointerTable
from execstore.blob import ArchiveRef
from execstore.errors import translate_database_errors
from execstore.results.backfill import legacy_result_filter
from execstore.results.format import RESULTS_PREFIX, parse_result_key, ref_from_row
from execstore.schema import models as m

__all__ = ["ResultArchives"]


class ResultArchives(PointerTable):
    """Result archives: ``job_result_archives`` rows and blobs under ``results/``.

    The rows come with their job's organization and ``created_at`` (the key is derived
    from them); a blob key names its job, so finding a key's row is a primary-key lookup.
    """

    name = RESULTS_PREFIX.rstrip("/")
    model = m.JobResultArchive

    @property
    def _organization(self) -> Any:
        return m.Job.organization_id

    @property
    def _records(self) -> Any:
        return sa.literal(1)  # one document per blob

    def _source(self) -> sa.Select[*tuple[Any, ...]]:
        stmt = sa.select(self.model, m.Job.organization_id, m.Job.created_at)
        return stmt.join(m.Job, m.Job.id == self.model.job_id)

    def _naming(self, keys: Sequence[str]) -> Any:
        jobs = {named[1] for key in keys if (named := parse_result_key(key)) is not None}
        return self.model.job_id.in_(jobs) if jobs else None

    def ref_of(self, row: Any) -> ArchiveRef:
        archive, organization_id, created_at = row
        return ref_from_row(archive, organization_id=organization_id, created_at=created_at)

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
