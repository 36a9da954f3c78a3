"""normalize_rag_rules: one packed RAG row per job pointing into per-organization catalogs.

The legacy JSON table becomes ``execution_rag_rules_legacy`` (the dual-write modes keep
writing it) and the normalized tables appear beside it: ``execution_rag_context`` (one
row per job: summary figures plus catalog ids and scores packed in arrays; a GIN index
over the rule ids on PostgreSQL), ``execution_rag_rule_uses`` (a small row per used rule) and ``rag_*_catalog`` (each distinct payer,
modifier and rule content once per organization), with ``rag_counters`` (shadow-read
counts) and ``rag_backfill_verified`` (the backfill's progress, read by
``contract_rag_rules``). Moving old rows is ``execstore backfill rag``'s work, not this
revision's.

Revision ID: normalize_rag_rules
Revises: add_varchar_limits
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

from execstore.errors import DowngradeRefused
from execstore.migrations.helpers import (
    create_tables,
    dialect,
    drop_tables,
    rename_to_transitional,
    restore_from_transitional,
)
from execstore.schema import legacy
from execstore.schema.rag import (
    LEGACY_JOB_UUID_INDEX,
    legacy_job_uuid_index_sql,
    rag_backfill_verified,
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
)


# Going down keeps the contexts the legacy table holds equally (the dual-write modes,
# a complete backfill and contract_rag_rules' downgrade all keep it so) and refuses when
# any context exists only in normalized form (written or changed in the normalized
# mode). That check needs the data, so it runs in downgrade() (PostgreSQL rolls the
# whole downgrade back; on SQLite the steps above this one stay done, losing nothing).
DOWNGRADE_REFUSED_WITH_ROWS: tuple[str, ...] = ()


def upgrade() -> None:
    rename_to_transitional(legacy.execution_rag_rules, "execution_rag_rules_legacy")
    if dialect() == "postgresql":
        op.execute(legacy_job_uuid_index_sql())
    create_tables(*NEW_TABLES)
    rag_backfill_verified.create(op.get_bind())


def downgrade() -> None:
    from execstore.rag.refill import contexts_not_in_legacy

    missing = contexts_not_in_legacy(op.get_bind())
    if missing:
        raise DowngradeRefused(
            f"{len(missing)} RAG context(s) exist only in the normalized tables (e.g. job "
            f"{missing[0]}), which normalize_rag_rules' downgrade would drop; keep them or "
            "delete those jobs' contexts first"
        )
    op.drop_table("rag_backfill_verified")
    drop_tables(*reversed(NEW_TABLES))
    if dialect() == "postgresql":
        op.drop_index(LEGACY_JOB_UUID_INDEX, "execution_rag_rules_legacy")
    restore_from_transitional(legacy.execution_rag_rules, "execution_rag_rules_legacy")
