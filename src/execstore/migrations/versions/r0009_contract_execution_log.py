"""contract_execution_log: drop the legacy ``execution_log`` once its rows have moved.

``execstore backfill logs`` copies the legacy rows into ``execution_log_partitioned``,
swaps (the legacy table stops accepting writes), verifies counts and checksums and then
empties the legacy table, and records its completion in ``backfill_completions``. This
revision drops the table with the online migration's triggers and their functions; it
refuses (BackfillIncomplete, nothing changed) while the table holds rows and the
backfill has not recorded its completion (a backfill that has not finished and
verified, or rows it set aside). A contract revision is optional for running execstore
(see ``execstore.migrations.runner.compatible_revisions``).

Going down re-creates the table empty and drops nothing (its rows live on in the
partitioned table); upgrading again drops the empty table at once.

Revision ID: contract_execution_log
Revises: contract_rag_rules
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from execstore.migrations.helpers import (
    JSONB,
    LEGACY_TIMESTAMP,
    create_table,
    require_backfill_complete,
)

revision = "contract_execution_log"
down_revision = "contract_rag_rules"
branch_labels = None
depends_on = None
contract = True
BACKFILL = "logs"  # the completion record this step requires

DROPPED = ("execution_log",)
# Going down only re-creates an empty table.
DOWNGRADE_REFUSED_WITH_ROWS: tuple[str, ...] = ()


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("execution_log"):
        return
    require_backfill_complete(
        bind,
        BACKFILL,
        legacy_table="execution_log",
        how="run `execstore backfill logs` until it reports the migration verified (rows it "
        "sets aside must be fixed or deleted)",
    )
    op.drop_table("execution_log")  # its triggers go with it
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS execstore_log_backfill_capture()")
        op.execute("DROP FUNCTION IF EXISTS execstore_log_retired()")


def downgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("execution_log"):
        return
    create_table(
        "execution_log",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_name", sa.String(500)),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("metadata", JSONB),
        sa.Column("timestamp", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("duration", sa.Integer()),
        sa.Index("ix_execution_log_job_id_timestamp", "job_id", "timestamp"),
    )
