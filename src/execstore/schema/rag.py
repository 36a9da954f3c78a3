"""RAG context (phase 2): per-job rows pointing into content-addressed catalogs."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from execstore.schema import legacy
from execstore.schema.base import BIGID, Base, job_fk, transitional_copy, utcnow
from execstore.schema.types import BoundedString

__all__ = [
    "ExecutionRagContext",
    "ExecutionRagModifier",
    "ExecutionRagPayer",
    "ExecutionRagRule",
    "RagModifierEntry",
    "RagPayerEntry",
    "RagRuleEntry",
    "execution_rag_rules_legacy",
]


class ExecutionRagContext(Base):
    """Per-job RAG retrieval summary; the retrieved items are rows below."""

    __tablename__ = "execution_rag_context"
    __table_args__ = (sa.Index(None, "organization_id", "retrieved_at"),)
    retrieved_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now(), default=utcnow)
    job_id: Mapped[uuid.UUID] = mapped_column(job_fk(), primary_key=True)
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


execution_rag_rules_legacy = transitional_copy(
    legacy.execution_rag_rules, "execution_rag_rules_legacy", Base.metadata
)
