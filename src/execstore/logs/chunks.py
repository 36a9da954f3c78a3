"""Archive chunks: building them from hot rows, uploading, verifying, recording them.

The archive unit is an organization's lines of one month, sorted by ``(job_id,
timestamp, id)`` and cut into chunks of about ``chunk_rows`` lines at job boundaries (a
job larger than four chunks is cut inside, so its lines span consecutive chunks). Why
this unit, measured (``benchmarks/bench_logs.py``, "archive unit"): a job's month as the
unit costs one pointer row per job (about 3-5 B per archived row at ~60 lines a job,
over the 2 B target); large chunks cost a fraction of a byte per row in pointer rows
plus 8 bytes per job for the fingerprints, compress better (gzip's window sees many
similar lines) and are read once into the cache, where one job's lines are found by
binary search.

Every step can be retried: the key is deterministic, an identical re-upload is a no-op,
and a pointer row is inserted with ``ON CONFLICT DO NOTHING`` on its key. A chunk is
read back and its sha256 checked before anything hot is removed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.archival.pointers import pointer_values
from execstore.blob import ArchiveRef, Archives
from execstore.errors import translate_database_errors
from execstore.logs.format import chunk_key, job_fingerprints, record_of
from execstore.schema import models as m
from execstore.schema.partitions import month_start

__all__ = [
    "Chunk",
    "ChunkBuilder",
    "chunk_values",
    "insert_pointer",
    "source_rows",
    "upload_chunk",
]

_GIANT_JOB_FACTOR: Final = 4
_step = m.ExecutionLogStep


@dataclass
class Chunk:
    """Lines of one organization and month, in ``(job_id, timestamp, id)`` order."""

    organization_id: uuid.UUID
    month: dt.datetime
    records: list[dict[str, Any]] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    jobs: list[uuid.UUID] = field(default_factory=list)
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    def add(
        self, job_id: uuid.UUID, id: int, timestamp: dt.datetime, record: dict[str, Any]
    ) -> None:
        """Append one line (callers add lines in order)."""
        if not self.jobs or self.jobs[-1] != job_id:
            self.jobs.append(job_id)
        self.records.append(record)
        self.ids.append(id)
        self.start = timestamp if self.start is None else min(self.start, timestamp)
        self.end = timestamp if self.end is None else max(self.end, timestamp)

    def key(self, archives: Archives, *, revision: int = 0) -> str:
        """This chunk's deterministic blob key."""
        return chunk_key(
            self.organization_id,
            self.month,
            self.jobs[0],
            self.ids[0],
            archives.codec,
            revision=revision,
        )

    def __len__(self) -> int:
        return len(self.records)


class ChunkBuilder:
    """Cuts one organization's ordered lines into chunks, one open chunk per month."""

    def __init__(self, organization_id: uuid.UUID, chunk_rows: int) -> None:
        self.organization_id = organization_id
        self.chunk_rows = chunk_rows
        self._open: dict[dt.datetime, Chunk] = {}

    def add(self, row: Any) -> Chunk | None:
        """Add a row of :func:`source_rows`; a full chunk when this row closes one."""
        month = month_start(row.timestamp)
        chunk = self._open.get(month)
        done = None
        if chunk is not None and len(chunk) >= self.chunk_rows:
            new_job = chunk.jobs[-1] != row.job_id
            if new_job or len(chunk) >= self.chunk_rows * _GIANT_JOB_FACTOR:
                done, chunk = chunk, None
        if chunk is None:
            chunk = self._open[month] = Chunk(self.organization_id, month)
        chunk.add(row.job_id, row.id, row.timestamp, record_from_row(row))
        return done

    def finish(self) -> Iterator[Chunk]:
        """The chunks still open, oldest month first."""
        for month in sorted(self._open):
            yield self._open[month]
        self._open = {}


def record_from_row(row: Any) -> dict[str, Any]:
    """The archive record of a row of :func:`source_rows`."""
    return record_of(
        row.job_id,
        row.id,
        row.timestamp,
        row.level,
        row.step_index,
        row.name,
        row.message,
        row.duration_ms,
        row.metadata,
    )


def source_rows(
    table: sa.Table, job_ids: Sequence[uuid.UUID], *, before: dt.datetime | None
) -> Any:
    """Lines of ``job_ids`` in ``table`` (older than ``before``), in chunk order."""
    stmt = (
        sa.select(
            table.c.timestamp,
            table.c.id,
            table.c.job_id,
            table.c.level,
            table.c.duration_ms,
            table.c.message,
            table.c.metadata,
            _step.step_index,
            _step.name,
        )
        .join(_step, _step.id == table.c.step_id)
        .where(table.c.job_id.in_(list(job_ids)))
        .order_by(table.c.job_id, table.c.timestamp, table.c.id)
    )
    if before is not None:
        stmt = stmt.where(table.c.timestamp < before)
    return stmt


async def upload_chunk(archives: Archives, chunk: Chunk, *, revision: int = 0) -> ArchiveRef:
    """Upload ``chunk`` (a no-op if its key already holds these bytes), then read it back."""
    stored = await archives.store_records(chunk.key(archives, revision=revision), chunk.records)
    await archives.verify(stored.ref)
    return stored.ref


def chunk_values(
    chunk: Chunk,
    ref: ArchiveRef,
    *,
    source_id: int | None,
    archived_at: dt.datetime,
    revision: int = 0,
) -> dict[str, Any]:
    """The ``execution_log_archives`` row of an uploaded chunk, archived at ``archived_at``."""
    assert chunk.start is not None
    assert chunk.end is not None
    return {
        "organization_id": chunk.organization_id,
        "start_date": chunk.start,
        "end_date": chunk.end,
        "first_job": min(chunk.jobs),
        "last_job": max(chunk.jobs),
        "job_keys": job_fingerprints(chunk.jobs),
        "source_id": source_id,
        "revision": revision,
        **pointer_values(ref, archived_at=archived_at),
    }


async def insert_pointer(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert a pointer row unless one has its key already; True if this call inserted it."""
    table = m.ExecutionLogArchive.__table__
    dialect = session.get_bind().dialect.name
    insert: Callable[..., Any] = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["blob_key"])
        .returning(table.c.id)
    )
    with translate_database_errors():
        return (await session.execute(stmt)).first() is not None
