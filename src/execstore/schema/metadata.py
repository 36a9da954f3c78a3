"""Execution metadata (phase 5): ids, status, progress and timing; names are joined."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from execstore.schema import legacy
from execstore.schema.base import Base, job_fk, transitional_copy
from execstore.schema.enums import ExecutionStatus, IntEnumColumn
from execstore.schema.types import BoundedString

__all__ = ["ExecutionMetadata", "execution_metadata_legacy"]


class ExecutionMetadata(Base):
    """Dashboard row for one job: ids, status, progress and timing; names are joined."""

    __tablename__ = "execution_metadata"
    # Newest-first listings scan these backwards; a DESC key would buy nothing.
    __table_args__ = (
        sa.Index(None, "organization_id", "status", "created_at"),
        sa.Index(None, "organization_id", "created_at"),
    )
    created_at: Mapped[dt.datetime]
    started_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]
    job_id: Mapped[uuid.UUID] = mapped_column(job_fk(), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
    workflow_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workflows.id"))
    client_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("clients.id"))
    claim_submission_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("claim_submissions.id")
    )
    primary_account_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("credentials.id"))
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer())
    total_steps: Mapped[int] = mapped_column(sa.SmallInteger(), default=0, server_default="0")
    completed_steps: Mapped[int] = mapped_column(sa.SmallInteger(), default=0, server_default="0")
    status: Mapped[ExecutionStatus] = mapped_column(IntEnumColumn(ExecutionStatus))
    progress_percent: Mapped[Decimal] = mapped_column(
        sa.Numeric(5, 2), default=Decimal(0), server_default="0"
    )
    error_code: Mapped[str | None] = mapped_column(BoundedString(50))
    error_message: Mapped[str | None] = mapped_column(BoundedString(500))


execution_metadata_legacy = transitional_copy(
    legacy.execution_metadata, "execution_metadata_legacy", Base.metadata
)
