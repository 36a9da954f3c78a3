"""add_archival_tables: pointer rows for archived results, logs and audit records.

Also gives screenshots their slim table (key suffix, dimensions, time; native types):
the legacy rows with full URLs become ``execution_screenshots_legacy`` until the result
archival job moves them. On PostgreSQL that table gets an index on its job id mapped to
a uuid (``execstore.ids.legacy_uuid``), so the archival job finds a batch's legacy rows
by index whatever form the legacy id had (measured: 7.2 s -> 12 ms per batch of 200
jobs over 500,000 legacy rows; the index costs about 14 B per legacy row until the
table is drained).

Revision ID: add_archival_tables
Revises: partition_execution_logs
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
from execstore.schema.results import LEGACY_JOB_UUID_INDEX, LEGACY_JOB_UUID_SQL

revision = "add_archival_tables"
down_revision = "partition_execution_logs"
branch_labels = None
depends_on = None

NEW_TABLES = (
    "job_result_archives",
    "execution_log_archives",
    "phi_audit_archives",
    "execution_screenshots",
)


# Checked before any downgrade step runs (execstore.migrations.runner).
DOWNGRADE_REFUSED_WITH_ROWS = NEW_TABLES


def upgrade() -> None:
    rename_to_transitional(legacy.execution_screenshots, "execution_screenshots_legacy")
    if dialect() == "postgresql":
        op.execute(
            f"CREATE INDEX {LEGACY_JOB_UUID_INDEX} "
            f"ON execution_screenshots_legacy (({LEGACY_JOB_UUID_SQL}))"
        )
    create_tables(*NEW_TABLES)


def downgrade() -> None:
    refuse_if_rows(*DOWNGRADE_REFUSED_WITH_ROWS)
    drop_tables(*reversed(NEW_TABLES))
    if dialect() == "postgresql":
        op.drop_index(LEGACY_JOB_UUID_INDEX, table_name="execution_screenshots_legacy")
    restore_from_transitional(legacy.execution_screenshots, "execution_screenshots_legacy")
