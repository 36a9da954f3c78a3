"""partition_execution_logs: a log table partitioned by month, beside the legacy one.

PostgreSQL: ``execution_log_partitioned`` is ``PARTITION BY RANGE ("timestamp")``; this
revision creates the current month's partition and the next three, and ``execstore
maintain`` keeps creating them ahead (or pg_partman does, in that mode). There is
deliberately no DEFAULT partition: PostgreSQL refuses ``DETACH PARTITION ...
CONCURRENTLY`` while one exists, and archival detaches whole months.

SQLite (documented fallback): one plain table with the same columns, its id an
``INTEGER PRIMARY KEY AUTOINCREMENT`` (SQLite fills an id only for that, and
AUTOINCREMENT keeps ids increasing after deletes, which archival cursors rely on);
archival deletes archived rows in batches instead of detaching partitions.

The hot row: eight columns (the NULL bitmap fits the tuple header), widest alignment
first, the step an ``int`` into a per-workflow catalog, metadata ``json`` (written once,
read whole), one index on ``job_id`` alone (deduplicated), no primary key (a partitioned
table can only have one that includes the partition key).

Also created: the per-workflow step catalog the rows point into, per-organization
retention, the registry of partitions detached for archival, and the state of the
online migration from the legacy ``execution_log`` (which stays until
``contract_execution_log``; moving its rows is ``execstore backfill logs``).

Downgrade moves the hot lines back into ``execution_log`` (ids become ``log-<id>``, the
step's index and name come from the catalog). It is refused while any other table of
this revision holds a row (a detached partition waiting for archival, an
organization's retention, the log migration's state: a half-done migration would move
lines twice), or while a step entry no line names, or a line without its step, exists.

Revision ID: partition_execution_logs
Revises: normalize_rag_rules
Create Date: 2026-11-28
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from alembic import op

from execstore.migrations.helpers import (
    BIGID,
    TIMESTAMPTZ,
    UUID,
    create_table,
    drop_tables,
    migration_now,
    refuse_if_rows,
)

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

# Checked before any downgrade step runs (execstore.migrations.runner), and again here.
DOWNGRADE_REFUSED_WITH_ROWS = NEW_TABLES
# Lines go down into execution_log, each with its step's index and name: only a line
# without its step entry, and a step entry no line names, would be lost.
DOWNGRADE_REFUSED_WHERE = {
    "execution_log_partitioned": "step_id NOT IN (SELECT id FROM execution_log_steps)",
    "execution_log_steps": "id NOT IN (SELECT step_id FROM execution_log_partitioned)",
}
DOWNGRADE_MOVES_ROWS = {"execution_log_partitioned": "execution_log"}

LOG_TABLE = "execution_log_partitioned"
MONTHS_AHEAD = 3

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
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    create_table(
        "execution_log_steps",
        sa.Column("id", sa.Integer(), sa.Identity(), primary_key=True),
        sa.Column("workflow_id", UUID, nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(500)),
        sa.UniqueConstraint(
            "workflow_id", "step_index", "name", postgresql_nulls_not_distinct=True
        ),
    )
    options: dict[str, object]
    if pg:
        identity = sa.Column("id", BIGID, sa.Identity(), nullable=False)
        options = {"postgresql_partition_by": 'RANGE ("timestamp")'}
    else:
        identity = sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True)
        options = {"sqlite_autoincrement": True}
    create_table(
        LOG_TABLE,
        sa.Column("timestamp", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        identity,
        sa.Column("job_id", UUID, nullable=False),
        sa.Column("step_id", sa.Integer(), nullable=False),
        sa.Column("duration_ms", sa.Integer()),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("message", sa.String(8000), nullable=False),
        sa.Column("metadata", sa.JSON()),
        sa.Index("ix_execution_log_partitioned_job_id", "job_id"),
        **options,
    )
    create_table(
        "execution_log_retention",
        sa.Column("updated_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.Column(
            "organization_id",
            UUID,
            sa.ForeignKey("organizations.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("retention_days", sa.Integer(), nullable=False),
    )
    create_table(
        "execution_log_detached",
        sa.Column("range_start", TIMESTAMPTZ, nullable=False),
        sa.Column("range_end", TIMESTAMPTZ, nullable=False),
        sa.Column("registered_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.Column("id", sa.Integer(), sa.Identity(), primary_key=True),
        sa.Column("table_name", sa.String(63), nullable=False, unique=True),
    )
    create_table(
        "execution_log_backfill",
        sa.Column("cursor_ts", sa.Text()),
        sa.Column("started_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.Column("swapped_at", TIMESTAMPTZ),
        sa.Column("verified_at", TIMESTAMPTZ),
        sa.Column("next_id", sa.BigInteger(), nullable=False),
        sa.Column("copied", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("id", sa.SmallInteger(), primary_key=True),
        sa.Column("phase", sa.SmallInteger(), nullable=False),
        sa.Column("cursor_id", sa.Text()),
    )
    create_table(
        "execution_log_backfill_changes",
        sa.Column("seq", BIGID, sa.Identity(), primary_key=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("op", sa.String(1), nullable=False),
        sa.Column("legacy_id", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(500)),
        sa.Column("row", sa.JSON(), nullable=False),
    )
    if pg:
        _create_partitions(bind, migration_now())


def _create_partitions(bind: sa.Connection, now: dt.datetime) -> None:
    # This month and the next MONTHS_AHEAD, named as pg_partman 4.x names monthly
    # partitions (``_pYYYY_MM``) so that switching to pg_partman adopts them. Each is
    # created as a plain table and attached, as `execstore maintain` does later.
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _ in range(MONTHS_AHEAD + 1):
        end = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        name = f"{LOG_TABLE}_p{start:%Y_%m}"
        bind.exec_driver_sql(
            f'CREATE TABLE "{name}" (LIKE {LOG_TABLE} INCLUDING DEFAULTS INCLUDING STORAGE)'
        )
        bind.exec_driver_sql(
            f'ALTER TABLE {LOG_TABLE} ATTACH PARTITION "{name}" '
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
        start = end


def downgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("execution_log"):  # nowhere to move the lines to
        refuse_if_rows(revision, ["execution_log_partitioned"])
    refuse_if_rows(revision, DOWNGRADE_REFUSED_WITH_ROWS, DOWNGRADE_REFUSED_WHERE)
    if sa.inspect(bind).has_table("execution_log"):
        _move_rows_back(bind)
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
