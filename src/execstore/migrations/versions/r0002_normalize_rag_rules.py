"""normalize_rag_rules: one packed RAG row per job pointing into per-organization catalogs.

The legacy JSON table becomes ``execution_rag_rules_legacy`` (the dual-write modes keep
writing it) and the normalized tables appear beside it: ``execution_rag_context`` (one
row per job: summary figures plus catalog ids and scores packed in arrays; a GIN index
over the rule ids on PostgreSQL), ``execution_rag_rule_uses`` (a small row per used
rule) and ``rag_*_catalog`` (each distinct payer, modifier and rule content once per
organization), with ``rag_counters`` (shadow-read counts) and ``rag_backfill_verified``
(the backfill's per-row progress). Moving old rows is ``execstore backfill rag``'s
work, not this revision's.

The backfills start here, so this revision also creates ``backfill_completions``: one
row per backfill (``results``, ``metadata``, ``rag``, ``logs``, ``audit``) that moved
every row and verified the result, with what it verified in ``details``
(``legacy_rows``: what its legacy table held then). Every contract revision reads it
through ``require_backfill_complete`` before it drops a legacy table.

On PostgreSQL the legacy table gets an index on its job id mapped to a uuid, the very
expression the RAG reads match jobs with (the planner uses an expression index only for
that expression).

Going down drops the normalized tables, so it is refused while any of them holds a row,
even one the legacy table also holds (dual write): delete those first, knowingly.

Revision ID: normalize_rag_rules
Revises: add_varchar_limits
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from execstore.migrations.helpers import (
    INT_ARRAY,
    JSONB,
    SMALLINT_ARRAY,
    TIMESTAMPTZ,
    UUID,
    create_table,
    dialect,
    drop_tables,
    legacy_uuid_pg,
    refuse_if_rows,
    rename_table,
)

revision = "normalize_rag_rules"
down_revision = "add_varchar_limits"
branch_labels = None
depends_on = None

NEW_TABLES = (
    "execution_rag_context",
    "execution_rag_rule_uses",
    "rag_payer_catalog",
    "rag_modifier_catalog",
    "rag_rule_catalog",
    "rag_counters",
    "rag_backfill_verified",
    "backfill_completions",
)
RENAMED = {"execution_rag_rules": "execution_rag_rules_legacy"}

# Checked before any downgrade step runs (execstore.migrations.runner), and again here.
DOWNGRADE_REFUSED_WITH_ROWS = NEW_TABLES

LEGACY_JOB_UUID_INDEX = "ix_execution_rag_rules_legacy_job_uuid"


def upgrade() -> None:
    rename_table("execution_rag_rules", "execution_rag_rules_legacy")
    if dialect() == "postgresql":
        op.execute(
            f"CREATE INDEX {LEGACY_JOB_UUID_INDEX} ON execution_rag_rules_legacy "
            f"(({legacy_uuid_pg('job_id')}))"
        )
    create_table(
        "execution_rag_context",
        sa.Column("retrieved_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.Column("job_id", UUID, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("organization_id", UUID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("rag_retrieval_time_ms", sa.Integer(), nullable=False),
        sa.Column("total_rules_retrieved", sa.Integer(), nullable=False),
        sa.Column("total_rules_used", sa.Integer(), nullable=False),
        sa.Column("average_score", sa.SmallInteger()),
        sa.Column("payer_entry_ids", INT_ARRAY, nullable=False),
        sa.Column("modifier_entry_ids", INT_ARRAY, nullable=False),
        sa.Column("rule_entry_ids", INT_ARRAY, nullable=False),
        sa.Column("rule_scores", SMALLINT_ARRAY, nullable=False),
        sa.Index(
            "ix_execution_rag_context_organization_id_retrieved_at",
            "organization_id",
            "retrieved_at",
        ),
        # fastupdate=off: with the pending list on, inserts leave ~6x the pages behind.
        sa.Index(
            "ix_execution_rag_context_rule_entry_ids",
            "rule_entry_ids",
            postgresql_using="gin",
            postgresql_with={"fastupdate": "off"},
        ).ddl_if(dialect="postgresql"),
    )
    create_table(
        "execution_rag_rule_uses",
        sa.Column(
            "job_id",
            UUID,
            sa.ForeignKey("execution_rag_context.job_id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("step_index", sa.Integer()),
        sa.Column("used_at", TIMESTAMPTZ),
        sa.Column("usage_reason", sa.String(500)),
    )
    create_table(
        "rag_payer_catalog",
        sa.Column("payer_name", sa.String(200), nullable=False),
        sa.Column("payer_id", sa.String(100), nullable=False),
        sa.Column("scenario", sa.String(500), nullable=False),
        *_catalog_columns(),
    )
    create_table(
        "rag_modifier_catalog",
        sa.Column("code", sa.String(20), nullable=False),
        sa.Column("scenario", sa.String(500), nullable=False),
        *_catalog_columns(),
    )
    create_table(
        "rag_rule_catalog",
        sa.Column("rule_id", sa.String(100)),
        sa.Column("rule_type", sa.String(50), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        *_catalog_columns(),
        sa.Index("ix_rag_rule_catalog_organization_id_rule_id", "organization_id", "rule_id"),
    )
    create_table(
        "rag_counters",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("updated_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
    )
    create_table(
        "rag_backfill_verified",
        sa.Column("legacy_id", sa.Text(), primary_key=True),
        sa.Column("verified_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
    )
    create_table(
        "backfill_completions",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("completed_at", TIMESTAMPTZ, nullable=False),
        sa.Column("verified_at", TIMESTAMPTZ, nullable=False),
        sa.Column("details", JSONB, nullable=False),
    )


def _catalog_columns() -> list[Any]:
    # Each distinct content once per organization, keyed by 16 bytes of its sha256.
    return [
        sa.Column("id", sa.Integer(), sa.Identity(), primary_key=True),
        sa.Column(
            "organization_id",
            UUID,
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("digest", sa.LargeBinary(16), nullable=False),
        sa.UniqueConstraint("organization_id", "digest"),
    ]


def downgrade() -> None:
    refuse_if_rows(revision, DOWNGRADE_REFUSED_WITH_ROWS)
    drop_tables(*reversed(NEW_TABLES))
    if dialect() == "postgresql":
        op.drop_index(LEGACY_JOB_UUID_INDEX, "execution_rag_rules_legacy")
    rename_table("execution_rag_rules_legacy", "execution_rag_rules")
