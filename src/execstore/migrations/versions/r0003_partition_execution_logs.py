"""partition_execution_logs: a log table partitioned by month, beside the legacy one.

PostgreSQL: ``execution_log_partitioned`` is ``PARTITION BY RANGE ("timestamp")``; this
revision creates the current month's partition and the next three, and ``execstore
maintain`` keeps creating them ahead (or pg_partman does, in that mode). There is
deliberately no DEFAULT partition: PostgreSQL refuses ``DETACH PARTITION ...
CONCURRENTLY`` while one exists, and archival detaches whole months.

SQLite (documented fallback): one plain table with the same columns; archival deletes
archived rows in batches instead of detaching partitions.

Also created: the per-workflow step catalog the rows point into, per-organization
retention, the registry of partitions detached for archival, and the state of the
online migration from the legacy ``execution_log`` (which stays until
``contract_execution_log``; moving its rows is ``execstore backfill logs``).

Downgrade moves the hot rows back into ``execution_log`` (ids become ``log-<id>``) and
is refused while a detached partition waits for archival.

Revision ID: partition_execution_logs
Revises: normalize_rag_rules
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from execstore.migrations.helpers import create_tables, drop_tables, refuse_if_rows
from execstore.schema.partitions import ensure_partitions_ahead

revision = "partition_execution_logs"
down_revision = "normalize_rag_rules"
branch_labels = None
depends_on = None

NEW_TABLES = (
    "execution_log_steps",
    "execution_log_partitioned",
    "execution_log_retention",
    "execution_log_detached",
    "execution_log_backfill",
    "execution_log_backfill_changes",
)

# Checked before any downgrade step runs (execstore.migrations.runner): the rows of a
# detached partition live in a table of their own that nothing would move back.
DOWNGRADE_REFUSED_WITH_ROWS = ("execution_log_detached",)

_SQLITE_TRIGGERS = (
    "execstore_log_backfill_insert_i",
    "execstore_log_backfill_delete_d",
    "execstore_log_backfill_update_d",
    "execstore_log_backfill_update_i",
    "execstore_log_retired_insert",
    "execstore_log_retired_update",
)
_LEVEL_NAMES = (
    "CASE l.level WHEN 10 THEN 'debug' WHEN 30 THEN 'warn' WHEN 40 THEN 'error' ELSE 'info' END"
)


def upgrade() -> None:
    create_tables(*NEW_TABLES)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        ensure_partitions_ahead(bind, months_ahead=3)


def downgrade() -> None:
    refuse_if_rows(*DOWNGRADE_REFUSED_WITH_ROWS)
    bind = op.get_bind()
    if sa.inspect(bind).has_table("execution_log"):
        _move_rows_back(bind)
    else:
        refuse_if_rows("execution_log_partitioned")
    drop_tables(*reversed(NEW_TABLES))


def _move_rows_back(bind: sa.Connection) -> None:
    pg = bind.dialect.name == "postgresql"
    # The online migration's triggers (capture, or "retired" after its swap) would
    # refuse or queue these inserts; the legacy table is the live one again below here.
    if pg:
        bind.exec_driver_sql("DROP TRIGGER IF EXISTS execstore_log_backfill ON execution_log")
        bind.exec_driver_sql("DROP TRIGGER IF EXISTS execstore_log_retired ON execution_log")
        bind.exec_driver_sql("DROP FUNCTION IF EXISTS execstore_log_backfill_capture()")
        bind.exec_driver_sql("DROP FUNCTION IF EXISTS execstore_log_retired()")
    else:
        for name in _SQLITE_TRIGGERS:
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    metadata = "l.metadata::jsonb" if pg else "l.metadata"
    stamp = "l.\"timestamp\" AT TIME ZONE 'UTC'" if pg else 'l."timestamp"'
    job = "l.job_id::text" if pg else "l.job_id"
    bind.exec_driver_sql(
        "INSERT INTO execution_log "
        '(id, job_id, step_index, step_name, level, message, metadata, "timestamp", duration) '
        f"SELECT 'log-' || l.id, {job}, s.step_index, s.name, {_LEVEL_NAMES}, l.message, "
        f"{metadata}, {stamp}, l.duration_ms "
        "FROM execution_log_partitioned l JOIN execution_log_steps s ON s.id = l.step_id"
    )
