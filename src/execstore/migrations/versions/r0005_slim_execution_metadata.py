"""slim_execution_metadata: ids, status, progress and timing only; names are joined.

The denormalized table (names, account arrays) becomes ``execution_metadata_legacy``
until the metadata backfill moves its rows; the slim table keys on ``job_id``.

Revision ID: slim_execution_metadata
Revises: add_archival_tables
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

revision = "slim_execution_metadata"
down_revision = "add_archival_tables"
branch_labels = None
depends_on = None


# Checked before any downgrade step runs (execstore.migrations.runner).
DOWNGRADE_REFUSED_WITH_ROWS = ("execution_metadata",)


def upgrade() -> None:
    rename_to_transitional(legacy.execution_metadata, "execution_metadata_legacy")
    create_tables("execution_metadata")


def downgrade() -> None:
    refuse_if_rows(*DOWNGRADE_REFUSED_WITH_ROWS)
    drop_tables("execution_metadata")
    restore_from_transitional(legacy.execution_metadata, "execution_metadata_legacy")
