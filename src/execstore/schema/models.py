"""The optimized schema (migration head), as SQLAlchemy 2 typed models.

Storage principles (DESIGN.md): native uuid ids, small-integer enums, ``timestamptz``,
names joined rather than copied, repeated RAG text content-addressed into catalogs,
bulk moved to blobs behind small pointer rows, and every VARCHAR enforced on write by
:class:`~execstore.schema.types.BoundedString`.

Columns are declared widest-alignment first (8-byte, then 16-byte uuids, then 2-byte
smallints, then variable-length) so PostgreSQL wastes no padding on hot rows.

Transitional tables (``*_legacy`` and the unpartitioned ``execution_log``) hold the
pre-optimization rows until the capability backfills drain them; a later contract
revision drops them. They are Core tables: nothing new is written to them except in
the RAG dual-write modes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from execstore.schema import legacy
from execstore.schema.base import new_metadata, transitional_copy
from execstore.schema.enums import ArchiveCodec, ExecutionStatus, IntEnumColumn, LogLevel
from execstore.schema.types import GUID, BoundedString, JSONDoc, SafeText, uuid_array

__all__ = [
    "Base",
    "ClaimSubmission",
    "Client",
    "Credential",
    "ExecutionLogArchive",
    "ExecutionLogEntry",
    "ExecutionMetadata",
    "ExecutionRagContext",
    "ExecutionRagModifier",
    "ExecutionRagPayer",
    "ExecutionRagRule",
    "ExecutionScreenshot",
    "HealingAttempt",
    "HealingSuggestion",
    "Job",
    "JobResultArchive",
    "Organization",
    "PhiAuditArchive",
    "PhiAuditLog",
    "RagModifierEntry",
    "RagPayerEntry",
    "RagRuleEntry",
    "ScheduleExecution",
    "Workflow",
    "execution_log_legacy",
    "execution_metadata_legacy",
    "execution_rag_rules_legacy",
    "execution_screenshots_legacy",
]

TZ = sa.DateTime(timezone=True)
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    """Declarative base for the optimized schema."""

    metadata = new_metadata()
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads it once, never mutated
        uuid.UUID: GUID(),
        dt.datetime: TZ,
        dict[str, Any]: JSONDoc(),
    }


def _job_fk() -> Any:
    return sa.ForeignKey("jobs.id", ondelete="CASCADE")


# --- reference data owned by the orchestration service -----------------------------------


class Organization(Base):
    """A tenant; every read and write is scoped to one."""

    __tablename__ = "organizations"
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=_now)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.Text())


class Workflow(Base):
    """A workflow definition; execution rows refer to it by id and join its name."""

    __tablename__ = "workflows"
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=_now)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(sa.Text())


class Client(Base):
    """A provider the claims are filed for."""

    __tablename__ = "clients"
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=_now)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(sa.Text())
    npi: Mapped[str | None] = mapped_column(sa.Text())


class ClaimSubmission(Base):
    """A claim; holds the patient (insuree) name and id that metadata used to copy."""

    __tablename__ = "claim_submissions"
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=_now)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
    client_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("clients.id"))
    patient_name: Mapped[str | None] = mapped_column(sa.Text())
    patient_id: Mapped[str | None] = mapped_column(sa.Text())


class Credential(Base):
    """A payer-portal account a job logs in with."""

    __tablename__ = "credentials"
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=_now)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
    name: Mapped[str] = mapped_column(sa.Text())
    portal: Mapped[str | None] = mapped_column(sa.Text())


class Job(Base):
    """One run of a workflow; ``result`` holds a slim summary, the detail lives in a blob."""

    __tablename__ = "jobs"
    __table_args__ = (sa.Index(None, "organization_id", "status"),)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=_now)
    started_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
    workflow_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("workflows.id"))
    client_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("clients.id"))
    claim_submission_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("claim_submissions.id")
    )
    credential_ids: Mapped[list[uuid.UUID]] = mapped_column(uuid_array(), default=list)
    status: Mapped[str] = mapped_column(sa.Text(), server_default="pending", default="pending")
    error_message: Mapped[str | None] = mapped_column(BoundedString(2000))
    result: Mapped[dict[str, Any] | None]


class ScheduleExecution(Base):
    """One firing of a schedule."""

    __tablename__ = "schedule_executions"
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=_now)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("workflows.id"))
    status: Mapped[str] = mapped_column(sa.Text())
    error_stack: Mapped[str | None] = mapped_column(BoundedString(10000))


class HealingAttempt(Base):
    """A self-healing attempt on a failed step."""

    __tablename__ = "healing_attempts"
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=_now)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(_job_fk())
    step_index: Mapped[int] = mapped_column(sa.Integer())
    succeeded: Mapped[bool] = mapped_column(server_default=sa.false(), default=False)
    reasoning: Mapped[str] = mapped_column(BoundedString(2000))


class HealingSuggestion(Base):
    """A suggested fix for a recurring error pattern."""

    __tablename__ = "healing_suggestions"
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=_now)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("workflows.id"))
    error_pattern: Mapped[str] = mapped_column(BoundedString(1000))
    dismiss_reason: Mapped[str | None] = mapped_column(BoundedString(500))


# --- execution metadata (phase 5: ids only, names joined) --------------------------------


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
    job_id: Mapped[uuid.UUID] = mapped_column(_job_fk(), primary_key=True)
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


# --- RAG context (phase 2: normalized, with content-addressed catalogs) -------------------


class ExecutionRagContext(Base):
    """Per-job RAG retrieval summary; the retrieved items are rows below."""

    __tablename__ = "execution_rag_context"
    __table_args__ = (sa.Index(None, "organization_id", "retrieved_at"),)
    retrieved_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=_now)
    job_id: Mapped[uuid.UUID] = mapped_column(_job_fk(), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
    rag_retrieval_time_ms: Mapped[int] = mapped_column(sa.Integer())
    total_rules_retrieved: Mapped[int] = mapped_column(sa.Integer())
    total_rules_used: Mapped[int] = mapped_column(sa.Integer(), default=0, server_default="0")
    average_retrieval_score: Mapped[Decimal | None] = mapped_column(sa.Numeric(5, 4))


class _CatalogEntry:
    """A content-addressed catalog row: ``digest`` is 16 bytes of sha256 over the content."""

    id: Mapped[int] = mapped_column(BIGID, sa.Identity(), primary_key=True)
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary(16), unique=True)


class RagPayerEntry(_CatalogEntry, Base):
    """A retrieved payer, stored once however many jobs retrieve it."""

    __tablename__ = "rag_payer_catalog"
    payer_name: Mapped[str] = mapped_column(BoundedString(200))
    payer_id: Mapped[str] = mapped_column(BoundedString(100))
    scenario: Mapped[str] = mapped_column(BoundedString(500))


class RagModifierEntry(_CatalogEntry, Base):
    """A retrieved billing modifier, stored once."""

    __tablename__ = "rag_modifier_catalog"
    code: Mapped[str] = mapped_column(BoundedString(20))
    scenario: Mapped[str] = mapped_column(BoundedString(500))


class RagRuleEntry(_CatalogEntry, Base):
    """A retrieved rule's text, stored once."""

    __tablename__ = "rag_rule_catalog"
    rule_id: Mapped[str | None] = mapped_column(BoundedString(100))
    rule_type: Mapped[str] = mapped_column(BoundedString(50))
    condition: Mapped[str] = mapped_column(BoundedString(1000))
    action: Mapped[str] = mapped_column(BoundedString(1000))


def _context_fk() -> Any:
    return sa.ForeignKey("execution_rag_context.job_id", ondelete="CASCADE")


class ExecutionRagPayer(Base):
    """A payer retrieved for a job, in retrieval order."""

    __tablename__ = "execution_rag_payers"
    job_id: Mapped[uuid.UUID] = mapped_column(_context_fk(), primary_key=True)
    payer_entry_id: Mapped[int] = mapped_column(
        BIGID, sa.ForeignKey("rag_payer_catalog.id"), index=True
    )
    ordinal: Mapped[int] = mapped_column(sa.SmallInteger(), primary_key=True)


class ExecutionRagModifier(Base):
    """A modifier retrieved for a job, in retrieval order."""

    __tablename__ = "execution_rag_modifiers"
    job_id: Mapped[uuid.UUID] = mapped_column(_context_fk(), primary_key=True)
    modifier_entry_id: Mapped[int] = mapped_column(
        BIGID, sa.ForeignKey("rag_modifier_catalog.id"), index=True
    )
    ordinal: Mapped[int] = mapped_column(sa.SmallInteger(), primary_key=True)


class ExecutionRagRule(Base):
    """A rule retrieved for a job: catalog id, score and how it was used."""

    __tablename__ = "execution_rag_rules"
    used_at_timestamp: Mapped[dt.datetime | None]
    job_id: Mapped[uuid.UUID] = mapped_column(_context_fk(), primary_key=True)
    rule_entry_id: Mapped[int] = mapped_column(
        BIGID, sa.ForeignKey("rag_rule_catalog.id"), index=True
    )
    ordinal: Mapped[int] = mapped_column(sa.SmallInteger(), primary_key=True)
    used_at_step_index: Mapped[int | None] = mapped_column(sa.SmallInteger())
    was_used: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    retrieval_score: Mapped[Decimal | None] = mapped_column(sa.Numeric(5, 4))
    usage_reason: Mapped[str | None] = mapped_column(BoundedString(500))


# --- execution log (phase 3: monthly partitions on PostgreSQL, no primary key) ------------


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
    timestamp: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=_now)
    job_id: Mapped[uuid.UUID]
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer())
    step_index: Mapped[int] = mapped_column(sa.SmallInteger())
    level: Mapped[LogLevel] = mapped_column(IntEnumColumn(LogLevel))
    step_name: Mapped[str | None] = mapped_column(BoundedString(500))
    message: Mapped[str] = mapped_column(BoundedString(8000))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata")


# --- archives: small pointer rows to verified blobs ---------------------------------------


class _ArchivePointer:
    """Where a verified archive blob is and how to check it (key, never a URL or secret)."""

    archived_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=_now)
    raw_size: Mapped[int] = mapped_column(sa.BigInteger())
    stored_size: Mapped[int] = mapped_column(sa.BigInteger())
    record_count: Mapped[int] = mapped_column(sa.Integer())
    codec: Mapped[ArchiveCodec] = mapped_column(IntEnumColumn(ArchiveCodec))
    format_version: Mapped[int] = mapped_column(sa.SmallInteger(), default=1, server_default="1")
    sha256: Mapped[bytes] = mapped_column(sa.LargeBinary(32))
    blob_key: Mapped[str] = mapped_column(BoundedString(400), unique=True)


class JobResultArchive(_ArchivePointer, Base):
    """The full output of one job, archived as one JSON document."""

    __tablename__ = "job_result_archives"
    job_id: Mapped[uuid.UUID] = mapped_column(_job_fk(), primary_key=True)


class ExecutionLogArchive(_ArchivePointer, Base):
    """A job's archived log lines (NDJSON), covering ``start_date``..``end_date``."""

    __tablename__ = "execution_log_archives"
    __table_args__ = (sa.Index(None, "archived_at"),)
    start_date: Mapped[dt.datetime]
    end_date: Mapped[dt.datetime]
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(index=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))


class PhiAuditArchive(_ArchivePointer, Base):
    """An organization's archived PHI audit records (NDJSON) for a time range."""

    __tablename__ = "phi_audit_archives"
    __table_args__ = (sa.Index(None, "organization_id", "start_date"),)
    start_date: Mapped[dt.datetime]
    end_date: Mapped[dt.datetime]
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))


class ExecutionScreenshot(Base):
    """One screenshot of a job: what cannot be derived (key suffix, size, time)."""

    __tablename__ = "execution_screenshots"
    captured_at: Mapped[dt.datetime]
    job_id: Mapped[uuid.UUID] = mapped_column(_job_fk(), primary_key=True)
    ordinal: Mapped[int] = mapped_column(sa.SmallInteger(), primary_key=True)
    step_index: Mapped[int] = mapped_column(sa.SmallInteger())
    width: Mapped[int | None] = mapped_column(sa.SmallInteger())
    height: Mapped[int | None] = mapped_column(sa.SmallInteger())
    key_suffix: Mapped[str] = mapped_column(BoundedString(200))


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
        legacy.phi_audit_log.c.created_at.type, server_default=sa.func.now(), default=_now
    )


# --- transitional tables: legacy rows waiting for their backfill ---------------------------


execution_log_legacy = transitional_copy(legacy.execution_log, "execution_log", Base.metadata)
execution_metadata_legacy = transitional_copy(
    legacy.execution_metadata, "execution_metadata_legacy", Base.metadata
)
execution_rag_rules_legacy = transitional_copy(
    legacy.execution_rag_rules, "execution_rag_rules_legacy", Base.metadata
)
execution_screenshots_legacy = transitional_copy(
    legacy.execution_screenshots, "execution_screenshots_legacy", Base.metadata
)
