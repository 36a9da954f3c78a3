"""PHI audit records and their archive pointers."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from execstore.schema import legacy
from execstore.schema.base import ArchivePointer, Base, utcnow
from execstore.schema.types import SafeText

__all__ = ["PhiAuditArchive", "PhiAuditLog"]


class PhiAuditLog(Base):
    """A PHI access record (kept in its legacy shape until the audit capability moves it)."""

    __tablename__ = "phi_audit_log"
    __table_args__ = (sa.Index(None, "organization_id", "created_at"), sa.Index(None, "job_id"))
    id: Mapped[str] = mapped_column(sa.Text(), primary_key=True)
    organization_id: Mapped[str] = mapped_column(sa.Text())
    user_id: Mapped[str | None] = mapped_column(sa.Text())
    job_id: Mapped[str | None] = mapped_column(sa.Text())
    action: Mapped[str] = mapped_column(SafeText())
    resource_type: Mapped[str] = mapped_column(SafeText())
    resource_id: Mapped[str | None] = mapped_column(SafeText())
    details: Mapped[dict[str, Any] | None]
    ip_address: Mapped[str | None] = mapped_column(sa.Text())
    user_agent: Mapped[str | None] = mapped_column(SafeText())
    created_at: Mapped[dt.datetime] = mapped_column(
        legacy.phi_audit_log.c.created_at.type, server_default=sa.func.now(), default=utcnow
    )


class PhiAuditArchive(ArchivePointer, Base):
    """An organization's archived PHI audit records (NDJSON) for a time range."""

    __tablename__ = "phi_audit_archives"
    __table_args__ = (sa.Index(None, "organization_id", "start_date"),)
    start_date: Mapped[dt.datetime]
    end_date: Mapped[dt.datetime]
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
