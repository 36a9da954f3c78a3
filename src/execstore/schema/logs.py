"""Execution logs (phase 3): monthly partitions on PostgreSQL, archive pointers."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from execstore.schema import legacy
from execstore.schema.base import BIGID, ArchivePointer, Base, transitional_copy, utcnow
from execstore.schema.enums import IntEnumColumn, LogLevel
from execstore.schema.types import BoundedString

__all__ = ["ExecutionLogArchive", "ExecutionLogEntry", "execution_log_legacy"]


class ExecutionLogEntry(Base):
    """One log line. Partitioned by month on PostgreSQL; a plain table on SQLite.

    No primary key: reads go by (job_id, timestamp); ``id`` orders lines written in the
    same instant and is what archival cursors remember.
    """

    __tablename__ = "execution_log_partitioned"
    __table_args__ = (
        sa.Index(None, "job_id", "timestamp"),
        {"postgresql_partition_by": "RANGE (timestamp)"},
    )
    __mapper_args__ = {"primary_key": ["id"]}  # noqa: RUF012 - mapper identity only
    id: Mapped[int] = mapped_column(BIGID, sa.Identity())
    timestamp: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=utcnow)
    job_id: Mapped[uuid.UUID]
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer())
    step_index: Mapped[int] = mapped_column(sa.SmallInteger())
    level: Mapped[LogLevel] = mapped_column(IntEnumColumn(LogLevel))
    step_name: Mapped[str | None] = mapped_column(BoundedString(500))
    message: Mapped[str] = mapped_column(BoundedString(8000))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")


class ExecutionLogArchive(ArchivePointer, Base):
    """A job's archived log lines (NDJSON), covering ``start_date``..``end_date``."""

    __tablename__ = "execution_log_archives"
    __table_args__ = (sa.Index(None, "archived_at"),)
    start_date: Mapped[dt.datetime]
    end_date: Mapped[dt.datetime]
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(index=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))


execution_log_legacy = transitional_copy(legacy.execution_log, "execution_log", Base.metadata)
