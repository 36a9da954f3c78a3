"""slim_execution_metadata: ids, status, progress and timing only; names are joined.

The denormalized table (names, account arrays) becomes ``execution_metadata_legacy``
until ``execstore backfill metadata`` moves its rows; the slim table keys on ``job_id``
with a single listing index, ``(organization_id, created_at)`` (on PostgreSQL
``(uuid_hash(organization_id), created_at)`` and extended statistics on the pair; see
execstore.schema.metadata for the measurements behind its shape). Also created:

- ``execution_progress``: the step counters of runs in flight (the churn of progress
  reports kept off the metadata rows);
- ``execution_daily_summary``: the per-day rollup dashboards read counts and duration
  percentiles from, and ``execution_summary_dirty``, the groups a write made stale;
  on PostgreSQL a trigger on ``execution_metadata`` fills the latter and ``execstore
  maintain`` refreshes the former (SQLite answers summaries from a live query);
- ``execution_metadata_state``: when the summaries were last refreshed, and what the
  last backfill check found (read by ``contract_execution_metadata``).

Revision ID: slim_execution_metadata
Revises: add_archival_tables
Create Date: 2026-11-28
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
from execstore.schema.metadata import DROP_SUMMARY_TRIGGERS_DDL, SUMMARY_TRIGGERS_DDL

revision = "slim_execution_metadata"
down_revision = "add_archival_tables"
branch_labels = None
depends_on = None

NEW_TABLES = (
    "execution_metadata",
    "execution_progress",
    "execution_daily_summary",
    "execution_summary_dirty",
    "execution_metadata_state",
)

# Checked before any downgrade step runs (execstore.migrations.runner). The rollup and
# the state rows are derived from execution_metadata, so that table alone decides.
DOWNGRADE_REFUSED_WITH_ROWS = ("execution_metadata",)


def upgrade() -> None:
    rename_to_transitional(legacy.execution_metadata, "execution_metadata_legacy")
    create_tables(*NEW_TABLES)
    if dialect() == "postgresql":
        for statement in SUMMARY_TRIGGERS_DDL:
            op.execute(statement)


def downgrade() -> None:
    refuse_if_rows(*DOWNGRADE_REFUSED_WITH_ROWS)
    if dialect() == "postgresql":
        for statement in DROP_SUMMARY_TRIGGERS_DDL:
            op.execute(statement)
    drop_tables(*reversed(NEW_TABLES))
    restore_from_transitional(legacy.execution_metadata, "execution_metadata_legacy")
