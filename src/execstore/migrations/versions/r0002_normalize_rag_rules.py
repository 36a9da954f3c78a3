"""normalize_rag_rules: per-job RAG rows that point into content-addressed catalogs.

The legacy JSON table becomes ``execution_rag_rules_legacy`` (the dual-write modes keep
writing it) and the plan's normalized tables appear beside it; repeated payer,
modifier and rule text is stored once in ``rag_*_catalog``. Moving old rows is the RAG
backfill job's work, not this revision's.

Revision ID: normalize_rag_rules
Revises: add_varchar_limits
Create Date: 2026-11-28
"""

from __future__ import annotations

from execstore.migrations.helpers import (
    create_tables,
    drop_tables,
    refuse_if_rows,
    rename_to_transitional,
    restore_from_transitional,
)
from execstore.schema import legacy

revision = "normalize_rag_rules"
down_revision = "add_varchar_limits"
branch_labels = None
depends_on = None

NEW_TABLES = (
    "execution_rag_context",
    "rag_payer_catalog",
    "rag_modifier_catalog",
    "rag_rule_catalog",
    "execution_rag_payers",
    "execution_rag_modifiers",
    "execution_rag_rules",
)


# Checked before any downgrade step runs (execstore.migrations.runner).
DOWNGRADE_REFUSED_WITH_ROWS = ("execution_rag_context",)


def upgrade() -> None:
    rename_to_transitional(legacy.execution_rag_rules, "execution_rag_rules_legacy")
    create_tables(*NEW_TABLES)


def downgrade() -> None:
    refuse_if_rows(*DOWNGRADE_REFUSED_WITH_ROWS)
    drop_tables(*reversed(NEW_TABLES))
    restore_from_transitional(legacy.execution_rag_rules, "execution_rag_rules_legacy")
