"""Execution logs (phase 3): the hot table, its step catalog, archive pointers, state.

The hot row was shaped by measurement (PostgreSQL 15, 200K realistic rows, messages of
about 190 characters, half with small metadata; ``benchmarks/bench_logs.py``):

- eight columns, so the NULL bitmap fits in the 24-byte tuple header (a ninth column
  costs every row with a NULL a 32-byte header);
- the step is an ``int`` into a per-workflow catalog (``execution_log_steps``) instead of
  a step index and a ~24-character name on every row;
- metadata is ``json`` (the compact text execstore wrote), not ``jsonb``: it is written
  once and read whole, never queried by key in the hot table, and ``jsonb``'s binary
  form costs about 8 bytes a row more;
- one index, on ``job_id`` alone: B-tree deduplication stores each job's key once with
  a posting list (about 10 B a row) where ``(job_id, timestamp)`` costs 57 B a row,
  because every key is distinct. Reads fetch one job's rows and order them (a job has
  tens to thousands of lines);
- widest-alignment first (``timestamp``, ``id``, then the uuid, ``int``, ``smallint``)
  so no padding is wasted before the message.

No primary key (a partitioned table can only have one that includes the partition key):
``id`` comes from an identity and orders lines written in the same instant; rows the
legacy backfill copies get negative ids, so they sort first and stay recognizable.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from execstore.schema import legacy
from execstore.schema.base import (
    BIGID,
    Base,
    KeyedArchivePointer,
    new_metadata,
    transitional_copy,
)
from execstore.schema.enums import IntEnumColumn, LogLevel
from execstore.schema.types import BoundedString
from execstore.textlimits import strip_nul_json

__all__ = [
    "ExecutionLogArchive",
    "ExecutionLogBackfill",
    "ExecutionLogBackfillChange",
    "ExecutionLogDetached",
    "ExecutionLogEntry",
    "ExecutionLogRetention",
    "ExecutionLogStep",
    "LogMetadata",
    "execution_log_legacy",
]


class LogMetadata(TypeDecorator[Any]):
    """A log line's metadata: ``json`` (text) on PostgreSQL, JSON on SQLite; NULs removed."""

    impl = sa.JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSON(none_as_null=True))
        return dialect.type_descriptor(sa.JSON(none_as_null=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return strip_nul_json(value)


class ExecutionLogEntry(Base):
    """One log line. Partitioned by month on PostgreSQL; a plain table on SQLite."""

    __tablename__ = "execution_log_partitioned"
    __table_args__ = (
        sa.Index(None, "job_id"),
        {"postgresql_partition_by": 'RANGE ("timestamp")'},
    )
    __mapper_args__ = {"primary_key": ["id"]}  # noqa: RUF012 - mapper identity only
    timestamp: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
    id: Mapped[int] = mapped_column(BIGID, sa.Identity())
    job_id: Mapped[uuid.UUID]
    step_id: Mapped[int] = mapped_column(sa.Integer())
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer())
    level: Mapped[LogLevel] = mapped_column(IntEnumColumn(LogLevel))
    message: Mapped[str] = mapped_column(BoundedString(8000))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", LogMetadata())


class ExecutionLogStep(Base):
    """A step of a workflow as log lines name it: (workflow, index, name) -> a small id.

    Entries are only ever added (in their own committed transaction), so an id a log
    row holds always resolves. Two spellings of a step are two entries.
    """

    __tablename__ = "execution_log_steps"
    __table_args__ = (
        sa.UniqueConstraint(
            "workflow_id", "step_index", "name", postgresql_nulls_not_distinct=True
        ),
    )
    id: Mapped[int] = mapped_column(sa.Integer(), sa.Identity(), primary_key=True)
    workflow_id: Mapped[uuid.UUID]
    step_index: Mapped[int] = mapped_column(sa.Integer())
    name: Mapped[str | None] = mapped_column(BoundedString(500))


class ExecutionLogArchive(KeyedArchivePointer, Base):
    """One archive chunk: an organization's log lines of one month, sorted by job.

    A chunk holds whole jobs (one job larger than a chunk spans several, in order), so
    ``first_job``..``last_job`` bound the jobs it holds and ``job_keys`` lists them
    exactly enough to skip chunks without downloading them: the sorted first 8 bytes of
    each job id (a false positive costs one download, never a wrong answer).
    ``source_id`` is the detached partition it came from (PostgreSQL), so the archival
    job can prove every row of that partition is in a chunk before dropping it.
    """

    __tablename__ = "execution_log_archives"
    __table_args__ = (
        sa.Index(None, "organization_id", "first_job"),
        sa.Index(None, "organization_id", "end_date"),
    )
    start_date: Mapped[dt.datetime]
    end_date: Mapped[dt.datetime]
    id: Mapped[int] = mapped_column(BIGID, sa.Identity(), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
    first_job: Mapped[uuid.UUID]
    last_job: Mapped[uuid.UUID]
    source_id: Mapped[int | None] = mapped_column(sa.Integer())
    revision: Mapped[int] = mapped_column(sa.SmallInteger(), default=0, server_default="0")
    job_keys: Mapped[bytes] = mapped_column(sa.LargeBinary())


class ExecutionLogRetention(Base):
    """An organization's own log retention (days); absent means the configured default."""

    __tablename__ = "execution_log_retention"
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
    organization_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    retention_days: Mapped[int] = mapped_column(sa.Integer())


class ExecutionLogDetached(Base):
    """A partition detached for archival and not dropped yet (PostgreSQL only).

    Readers include these tables, so a line is never invisible between its partition's
    detach and the drop that follows once every row is archived.
    """

    __tablename__ = "execution_log_detached"
    range_start: Mapped[dt.datetime]
    range_end: Mapped[dt.datetime]
    registered_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
    id: Mapped[int] = mapped_column(sa.Integer(), sa.Identity(), primary_key=True)
    table_name: Mapped[str] = mapped_column(sa.String(63), unique=True)


class ExecutionLogBackfill(Base):
    """Progress of the online migration from the legacy ``execution_log`` (one row, id 1)."""

    __tablename__ = "execution_log_backfill"
    cursor_ts: Mapped[str | None] = mapped_column(sa.Text())
    """The legacy ``timestamp`` of the last copied row, as the database spells it."""
    started_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
    swapped_at: Mapped[dt.datetime | None]
    verified_at: Mapped[dt.datetime | None]
    next_id: Mapped[int] = mapped_column(sa.BigInteger())
    copied: Mapped[int] = mapped_column(sa.BigInteger(), default=0, server_default="0")
    id: Mapped[int] = mapped_column(sa.SmallInteger(), primary_key=True)
    phase: Mapped[int] = mapped_column(sa.SmallInteger())
    cursor_id: Mapped[str | None] = mapped_column(sa.Text())


class ExecutionLogBackfillChange(Base):
    """A legacy row the migration must look at again, with its content then.

    ``I``: inserted (or updated to) behind the copy cursor; ``D``: deleted (or updated
    away) behind it; ``R``: set aside (a batch could not move it), retried every run.
    """

    __tablename__ = "execution_log_backfill_changes"
    seq: Mapped[int] = mapped_column(BIGID, sa.Identity(), primary_key=True)
    attempts: Mapped[int] = mapped_column(sa.Integer(), default=0, server_default="0")
    op: Mapped[str] = mapped_column(sa.String(1))
    legacy_id: Mapped[str] = mapped_column(sa.Text())
    reason: Mapped[str | None] = mapped_column(BoundedString(500))
    row: Mapped[dict[str, Any]] = mapped_column(LogMetadata())


execution_log_legacy = transitional_copy(legacy.execution_log, "execution_log", new_metadata())
"""The legacy unpartitioned table, until ``contract_execution_log`` drops it.

Not part of the head schema (``Base.metadata``): the backfill reads it while it exists
(``execstore backfill logs``); the contract revision drops it once it is empty.
"""
