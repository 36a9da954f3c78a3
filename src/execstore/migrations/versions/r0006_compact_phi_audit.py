"""compact_phi_audit: the compact, hash-chained PHI audit tables (expand).

The legacy ``phi_audit_log`` (text ids, JSON details) becomes ``phi_audit_log_legacy``
until ``execstore backfill audit`` moves its rows into the chain; the new
``phi_audit_log`` keys on ``(organization_id, seq)`` with its catalogs, compression
dictionaries, chain heads and checkpoint index, and is made append-only by a trigger
(both backends).

Revision ID: compact_phi_audit
Revises: slim_execution_metadata
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

from execstore.migrations.helpers import (
    create_tables,
    dialect,
    drop_tables,
    refuse_if_rows,
    rename_to_transitional,
    restore_from_transitional,
)
from execstore.schema import legacy
from execstore.schema.audit import append_only_ddl, drop_append_only_ddl

revision = "compact_phi_audit"
down_revision = "slim_execution_metadata"
branch_labels = None
depends_on = None

NEW_TABLES = (
    "phi_audit_log",
    "phi_audit_catalog",
    "phi_audit_chain_heads",
    "phi_audit_checkpoints",
    "phi_audit_dictionaries",
)

# Checked before any downgrade step runs (execstore.migrations.runner).
DOWNGRADE_REFUSED_WITH_ROWS = NEW_TABLES


def upgrade() -> None:
    rename_to_transitional(legacy.phi_audit_log, "phi_audit_log_legacy")
    create_tables(*NEW_TABLES)
    for statement in append_only_ddl(dialect()):
        op.execute(statement)


def downgrade() -> None:
    refuse_if_rows(*DOWNGRADE_REFUSED_WITH_ROWS)
    for statement in drop_append_only_ddl(dialect()):
        op.execute(statement)
    drop_tables(*reversed(NEW_TABLES))
    restore_from_transitional(legacy.phi_audit_log, "phi_audit_log_legacy")
