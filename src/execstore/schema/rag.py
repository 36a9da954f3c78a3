"""RAG context (phase 2): one packed row per job pointing into per-organization catalogs.

Measured on PostgreSQL 15 (see ``benchmarks/bench_rag.py`` and the README): a row per
retrieved rule costs about 160 B however narrow it is (tuple header, line pointer, a
key index entry), so a job's references are packed into its context row instead —
catalog ids and scores as arrays, usage as a short JSON list — and "which jobs
retrieved rule X" is answered by a GIN index over the packed rule ids.

- ``execution_rag_context``: one row per job. ``rule_entry_ids[i]`` is the i-th
  retrieved rule's catalog id and ``rule_scores[i]`` its retrieval score in ten-
  thousandths (NULL when the retriever gave none); ``payer_entry_ids`` and
  ``modifier_entry_ids`` likewise.
- ``execution_rag_rule_uses``: one small append-only row per used rule (position, step,
  time, reason), so marking a rule used never rewrites the packed row.
- ``rag_rule_catalog``/``rag_payer_catalog``/``rag_modifier_catalog``: each distinct
  content once per organization, keyed by a 16-byte sha256 ``digest`` of the fitted
  text. Rows carry ``organization_id`` and go with their organization, so no
  organization's text is ever reachable from another's references. A rule's condition
  and action are stored deflated (``body``).
- ``rag_counters``: named counters (shadow-read comparisons and mismatches), updated
  in their own short transactions and readable from any process.
- ``rag_backfill_verified``: legacy rows the backfill moved and verified (transitional,
  like ``execution_rag_rules_legacy``: ``contract_rag_rules`` drops both).

On SQLite the arrays are JSON arrays and there is no GIN index: rule look-ups scan the
organization's contexts in the time window (the documented fallback).
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

from execstore.ids import legacy_uuid_sql
from execstore.schema import legacy
from execstore.schema.base import TZ, Base, job_fk, new_metadata, transitional_copy
from execstore.schema.types import GUID, BoundedString

__all__ = [
    "LEGACY_JOB_UUID_INDEX",
    "RULE_ACTION_LIMIT",
    "RULE_CONDITION_LIMIT",
    "ExecutionRagContext",
    "RagCounter",
    "RagModifierEntry",
    "RagPayerEntry",
    "RagRuleEntry",
    "execution_rag_rule_uses",
    "execution_rag_rules_legacy",
    "legacy_job_uuid_index_sql",
    "legacy_job_uuid_sql",
    "rag_backfill_verified",
    "transitional_metadata",
]


class _IntArray(TypeDecorator[list[Any]]):
    """``int[]``/``smallint[]`` on PostgreSQL (GIN-indexable), a JSON array on SQLite."""

    impl = sa.JSON
    cache_ok = True

    def __init__(self, small: bool = False) -> None:
        super().__init__()
        self.small = small

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            item = sa.SmallInteger() if self.small else sa.Integer()
            return dialect.type_descriptor(postgresql.ARRAY(item))
        return dialect.type_descriptor(sa.JSON())

    def process_result_value(self, value: Any, dialect: Dialect) -> list[Any] | None:
        return None if value is None else list(value)


def _org_fk() -> Any:
    # Catalog text goes with its organization: deleting the organization removes it.
    return sa.ForeignKey("organizations.id", ondelete="CASCADE")


class ExecutionRagContext(Base):
    """A job's RAG retrieval: summary figures and its packed references into the catalogs."""

    __tablename__ = "execution_rag_context"
    __table_args__ = (
        sa.Index(None, "organization_id", "retrieved_at"),
        # fastupdate=off: with the pending list on, inserts leave ~6x the pages behind
        # (773 B/job against 115 B/job measured at 5,000 jobs).
        sa.Index(
            "ix_execution_rag_context_rule_entry_ids",
            "rule_entry_ids",
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        ).ddl_if(dialect="postgresql"),
    )
    retrieved_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
    job_id: Mapped[uuid.UUID] = mapped_column(job_fk(), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
    rag_retrieval_time_ms: Mapped[int] = mapped_column(sa.Integer())
    total_rules_retrieved: Mapped[int] = mapped_column(sa.Integer())
    total_rules_used: Mapped[int] = mapped_column(sa.Integer())
    average_score: Mapped[int | None] = mapped_column(sa.SmallInteger())
    payer_entry_ids: Mapped[list[int]] = mapped_column(_IntArray())
    modifier_entry_ids: Mapped[list[int]] = mapped_column(_IntArray())
    rule_entry_ids: Mapped[list[int]] = mapped_column(_IntArray())
    rule_scores: Mapped[list[int | None]] = mapped_column(_IntArray(small=True))


execution_rag_rule_uses = sa.Table(
    "execution_rag_rule_uses",
    Base.metadata,
    sa.Column(
        "job_id",
        GUID(),
        sa.ForeignKey("execution_rag_context.job_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("position", sa.SmallInteger(), nullable=False),
    sa.Column("counted", sa.Boolean(), nullable=False),
    sa.Column("step_index", sa.Integer()),
    sa.Column("used_at", TZ),
    sa.Column("usage_reason", BoundedString(500)),
)
"""A rule a job used: ``position`` in the job's ``rule_entry_ids``, step, time and reason.

Append-only beside the context row, so marking a rule used never rewrites the packed
row (measured: each rewrite left ~500 B of dead space per job and new GIN entries).
``counted`` is true when the mark added one to the saved ``total_rules_used``. No
primary key: one row per (job, position) is kept by ``mark_rule_used`` under the
context row's lock, and the job_id index (deduplicated) is all reads need."""


class _CatalogEntry:
    """A content-addressed catalog row: 16 bytes of sha256 over the fitted content."""

    id: Mapped[int] = mapped_column(sa.Integer(), sa.Identity(), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(_org_fk())
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary(16))


class RagPayerEntry(_CatalogEntry, Base):
    """A retrieved payer, stored once per organization however many jobs retrieve it."""

    __tablename__ = "rag_payer_catalog"
    __table_args__ = (sa.UniqueConstraint("organization_id", "digest"),)
    payer_name: Mapped[str] = mapped_column(BoundedString(200))
    payer_id: Mapped[str] = mapped_column(BoundedString(100))
    scenario: Mapped[str] = mapped_column(BoundedString(500))


class RagModifierEntry(_CatalogEntry, Base):
    """A retrieved billing modifier, stored once per organization."""

    __tablename__ = "rag_modifier_catalog"
    __table_args__ = (sa.UniqueConstraint("organization_id", "digest"),)
    code: Mapped[str] = mapped_column(BoundedString(20))
    scenario: Mapped[str] = mapped_column(BoundedString(500))


RULE_CONDITION_LIMIT = 1000
RULE_ACTION_LIMIT = 1000
"""Characters kept of a rule's condition and action (the plan's ``VarChar(1000)``)."""


class RagRuleEntry(_CatalogEntry, Base):
    """A retrieved rule, stored once per organization; condition and action compressed.

    ``body`` is ``[condition, action]`` as JSON, deflated when that is smaller (see
    :func:`execstore.rag.format.pack_rule_text`): PostgreSQL compresses nothing in rows
    under about 2 kB, and rule text is most of the catalog's bytes (measured ~2x).
    """

    __tablename__ = "rag_rule_catalog"
    __table_args__ = (
        sa.UniqueConstraint("organization_id", "digest"),
        sa.Index(None, "organization_id", "rule_id"),
    )
    rule_id: Mapped[str | None] = mapped_column(BoundedString(100))
    rule_type: Mapped[str] = mapped_column(BoundedString(50))
    body: Mapped[bytes] = mapped_column(sa.LargeBinary())


class RagCounter(Base):
    """A named counter (shadow reads, mismatches), shared by every process."""

    __tablename__ = "rag_counters"
    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    value: Mapped[int] = mapped_column(sa.BigInteger(), default=0, server_default="0")
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


transitional_metadata = new_metadata()
"""Tables that live from ``normalize_rag_rules`` until ``contract_rag_rules`` drops them.

Kept out of ``Base.metadata`` (which describes head, where they are gone); code that
uses them checks the store's revision first (``RagMode.uses_legacy_table``)."""

execution_rag_rules_legacy = transitional_copy(
    legacy.execution_rag_rules, "execution_rag_rules_legacy", transitional_metadata
)

rag_backfill_verified = sa.Table(
    "rag_backfill_verified",
    transitional_metadata,
    sa.Column("legacy_id", sa.Text(), primary_key=True),
    sa.Column("verified_at", TZ, nullable=False, server_default=sa.func.now()),
)
"""Legacy rows whose normalized copy the backfill wrote (or found) and verified equal."""
LEGACY_JOB_UUID_INDEX = "ix_execution_rag_rules_legacy_job_uuid"
"""PostgreSQL only, created by ``normalize_rag_rules`` (not modelled: Alembic cannot compare
expression indexes): finds a job's legacy row by the uuid its text id maps to, whatever
its spelling (uuids in any case, braced, cuids). SQLite tries the spellings of a uuid,
then scans."""


def legacy_job_uuid_sql() -> str:
    """PostgreSQL: the uuid a legacy row's ``job_id`` maps to, as the index spells it."""
    from sqlalchemy.dialects import postgresql as pg

    expr = legacy_uuid_sql(sa.column("job_id", sa.Text()), "postgresql").compile(
        dialect=pg.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"literal_binds": True},
    )
    return f"({expr})"


def legacy_job_uuid_index_sql() -> str:
    """The DDL of :data:`LEGACY_JOB_UUID_INDEX` (the same expression the reads use)."""
    return (
        f"CREATE INDEX {LEGACY_JOB_UUID_INDEX} ON execution_rag_rules_legacy "
        f"({legacy_job_uuid_sql()})"
    )
