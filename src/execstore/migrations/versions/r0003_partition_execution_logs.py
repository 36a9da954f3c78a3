"""partition_execution_logs: a log table partitioned by month, beside the legacy one.

PostgreSQL: ``execution_log_partitioned`` is ``PARTITION BY RANGE (timestamp)`` with
monthly partitions named ``execution_log_partitioned_pYYYYMM``; this revision creates the
current month and the next three, and ``execstore maintain`` keeps creating them ahead.
There is deliberately no DEFAULT partition: PostgreSQL refuses ``DETACH PARTITION ...
CONCURRENTLY`` while one exists, and retention detaches whole months.

SQLite (documented fallback): one plain table with the same columns; retention deletes
by timestamp range instead of detaching partitions.

Revision ID: partition_execution_logs
Revises: normalize_rag_rules
Create Date: 2026-11-28
"""

from __future__ import annotations

import datetime as dt

from alembic import op

from execstore.migrations.helpers import create_tables, drop_tables, refuse_if_rows
from execstore.schema.partitions import ensure_log_partitions

revision = "partition_execution_logs"
down_revision = "normalize_rag_rules"
branch_labels = None
depends_on = None


# Checked before any downgrade step runs (execstore.migrations.runner).
DOWNGRADE_REFUSED_WITH_ROWS = ("execution_log_partitioned",)


def upgrade() -> None:
    create_tables("execution_log_partitioned")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        ensure_log_partitions(bind, dt.datetime.now(dt.UTC), months_ahead=3)


def downgrade() -> None:
    refuse_if_rows(*DOWNGRADE_REFUSED_WITH_ROWS)
    drop_tables("execution_log_partitioned")
