"""The logs part of the reconciler: chunk pointer rows and blobs under ``logs/``.

A pointer row whose blob is missing is marked ``lost``, so reads of a job in that chunk
raise ArchiveMissing at once, without a blob request. A blob without a pointer row is
"pending" while the first line it holds is still hot (a crashed archival run left it
and its re-run will record it); otherwise it is an orphan (a run whose lines changed
before it could record the chunk, or a rewrite whose transaction rolled back).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.archival import ArchiveTotals, Pointer, pointer_totals, pointers_in_id_order
from execstore.errors import translate_database_errors
from execstore.logs.format import LOGS_PREFIX, first_id_of_key
from execstore.logs.repository import archive_ref, detached_tables
from execstore.schema import models as m

__all__ = ["LogArchives"]

_archive = m.ExecutionLogArchive
_entry_table: sa.Table = m.ExecutionLogEntry.__table__  # type: ignore[assignment]


class LogArchives:
    """Log archive chunks as an :class:`~execstore.archival.ArchiveKind`."""

    name = "logs"
    prefix = LOGS_PREFIX

    def organization_prefix(self, organization_id: uuid.UUID) -> str:
        """``logs/<org>/``."""
        return f"{LOGS_PREFIX}{organization_id}/"

    async def pointers(
        self,
        session: AsyncSession,
        *,
        after: Any,
        limit: int,
        organization_id: uuid.UUID | None,
    ) -> tuple[list[Pointer], Any]:
        """Chunk pointer rows in id order."""
        return await pointers_in_id_order(
            session,
            _archive,
            lambda row: Pointer(ref=archive_ref(row), marked_lost=row.lost, row=row.id),
            after=after,
            limit=limit,
            organization_id=organization_id,
        )

    async def referenced(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """The keys a chunk pointer row points at."""
        if not keys:
            return set()
        with translate_database_errors():
            found = await session.scalars(
                sa.select(_archive.blob_key).where(_archive.blob_key.in_(list(keys)))
            )
        return set(found.all())

    async def pending(self, session: AsyncSession, keys: Sequence[str]) -> set[str]:
        """Blobs whose first line is still hot: an unfinished run will record them."""
        wanted: dict[tuple[uuid.UUID, int], str] = {}
        for key in keys:
            parts = key.split("/")
            first_id = first_id_of_key(key)
            if len(parts) != 6 or first_id is None:
                continue
            try:
                wanted[(uuid.UUID(parts[4]), first_id)] = key
            except ValueError:
                continue
        if not wanted:
            return set()
        found: set[str] = set()
        with translate_database_errors():
            for table in [_entry_table, *await detached_tables(session)]:
                rows = await session.execute(
                    sa.select(table.c.job_id, table.c.id).where(
                        table.c.job_id.in_({job for job, _ in wanted}),
                        table.c.id.in_({id_ for _, id_ in wanted}),
                    )
                )
                found |= {wanted[key] for key in map(tuple, rows) if key in wanted}
        return found

    async def mark(self, session: AsyncSession, pointer: Pointer, *, lost: bool) -> None:
        """Set or clear the chunk's ``lost`` mark."""
        with translate_database_errors():
            await session.execute(
                sa.update(_archive).where(_archive.id == pointer.row).values(lost=lost)
            )

    async def totals(
        self, session: AsyncSession, *, organization_id: uuid.UUID | None = None
    ) -> ArchiveTotals:
        """Blobs, records and bytes from the pointer rows."""
        return await pointer_totals(session, _archive, organization_id=organization_id)
