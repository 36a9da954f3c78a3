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

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.archival import PointerTable
from execstore.errors import translate_database_errors
from execstore.logs.format import first_id_of_key
from execstore.logs.repository import detached_tables
from execstore.schema import models as m

__all__ = ["LogArchives"]

_archive = m.ExecutionLogArchive
_entry_table: sa.Table = m.ExecutionLogEntry.__table__  # type: ignore[assignment]


class LogArchives(PointerTable):
    """Log archive chunks: ``execution_log_archives`` rows and blobs under ``logs/``."""

    name = "logs"
    model = _archive

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
