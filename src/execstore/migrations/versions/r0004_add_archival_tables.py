"""add_archival_tables: pointer rows for archived results, logs and audit records.

Also gives screenshots their slim table (key suffix, dimensions, time; native types):
the legacy rows with full URLs become ``execution_screenshots_legacy`` until the result
archival job moves them.

Revision ID: add_archival_tables
Revises: partition_execution_logs
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
    create_tables(*NEW_TABLES)


def downgrade() -> None:
    refuse_if_rows(*DOWNGRADE_REFUSED_WITH_ROWS)
    drop_tables(*reversed(NEW_TABLES))
    restore_from_transitional(legacy.execution_screenshots, "execution_screenshots_legacy")
