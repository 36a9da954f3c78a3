"""slim_execution_metadata: ids, status, progress and timing only; names are joined.

The denormalized table (names, account arrays) becomes ``execution_metadata_legacy``
until ``execstore backfill metadata`` moves its rows; the slim table keys on ``job_id``
with a single listing index, ``(organization_id, created_at)`` (on PostgreSQL
``(uuid_hash(organization_id), created_at)`` and extended statistics on the pair; see
execstore.schema.metadata for the measurements behind its shape). Also created:

- ``execution_progress``: the step counters of runs in flight (the churn of progress
  reports kept off the metadata rows; autovacuum empties it often);
- ``execution_daily_summary``: the per-day rollup dashboards read counts and duration
  percentiles from, and ``execution_summary_dirty``, the groups a write made stale;
  on PostgreSQL a trigger on ``execution_metadata`` fills the latter and ``execstore
  maintain`` refreshes the former (SQLite answers summaries from a live query);
- ``execution_metadata_state``: named facts of the capability (when the summaries were
  last refreshed).

Revision ID: slim_execution_metadata
Revises: add_archival_tables
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from execstore.migrations.helpers import (
    JSONB,
    TIMESTAMPTZ,
    UUID,
    create_table,
    dialect,
    drop_tables,
    refuse_if_rows,
    rename_table,
)

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
RENAMED = {"execution_metadata": "execution_metadata_legacy"}

# Checked before any downgrade step runs (execstore.migrations.runner), and again here.
# The rollup and the state rows are derived, but a downgrade still loses them: the
# operator deletes them knowingly.
DOWNGRADE_REFUSED_WITH_ROWS = NEW_TABLES

LISTING_INDEX = "ix_execution_metadata_organization_hash_created_at"
LISTING_STATISTICS = "execution_metadata_organization_hash"

# PostgreSQL only: the trigger that records which summary groups a write made stale.
# A row counts in the group (organization, workflow, UTC day of created_at); a change
# to any column a summary reads marks the old and the new group. Progress updates
# touch none of them, so the WHEN clause keeps them from calling the function at all.
_MARK_GROUP = (
    "INSERT INTO execution_summary_dirty (organization_id, workflow_id, day) "
    "VALUES ({row}.organization_id, {row}.workflow_id, "
    "({row}.created_at AT TIME ZONE 'UTC')::date) "
    "ON CONFLICT DO NOTHING;"
)
SUMMARY_TRIGGERS = (
    "CREATE FUNCTION execstore_mark_summary_stale() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "  IF TG_OP IN ('UPDATE', 'DELETE') THEN " + _MARK_GROUP.format(row="OLD") + " END IF;\n"
    "  IF TG_OP IN ('UPDATE', 'INSERT') THEN " + _MARK_GROUP.format(row="NEW") + " END IF;\n"
    "  RETURN NULL;\n"
    "END $$",
    "CREATE FUNCTION execstore_clear_summaries() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "  DELETE FROM execution_summary_dirty;\n"
    "  DELETE FROM execution_daily_summary;\n"
    "  RETURN NULL;\n"
    "END $$",
    "CREATE TRIGGER execution_metadata_summary_insert_delete "
    "AFTER INSERT OR DELETE ON execution_metadata "
    "FOR EACH ROW EXECUTE FUNCTION execstore_mark_summary_stale()",
    "CREATE TRIGGER execution_metadata_summary_update "
    "AFTER UPDATE ON execution_metadata FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status "
    "OR OLD.duration_ms IS DISTINCT FROM NEW.duration_ms "
    "OR OLD.created_at IS DISTINCT FROM NEW.created_at "
    "OR OLD.workflow_id IS DISTINCT FROM NEW.workflow_id "
    "OR OLD.organization_id IS DISTINCT FROM NEW.organization_id) "
    "EXECUTE FUNCTION execstore_mark_summary_stale()",
    "CREATE TRIGGER execution_metadata_summary_truncate "
    "AFTER TRUNCATE ON execution_metadata "
    "FOR EACH STATEMENT EXECUTE FUNCTION execstore_clear_summaries()",
)
DROP_SUMMARY_TRIGGERS = (
    "DROP TRIGGER IF EXISTS execution_metadata_summary_truncate ON execution_metadata",
    "DROP TRIGGER IF EXISTS execution_metadata_summary_update ON execution_metadata",
    "DROP TRIGGER IF EXISTS execution_metadata_summary_insert_delete ON execution_metadata",
    "DROP FUNCTION IF EXISTS execstore_clear_summaries()",
    "DROP FUNCTION IF EXISTS execstore_mark_summary_stale()",
)


def upgrade() -> None:
    rename_table("execution_metadata", "execution_metadata_legacy")
    create_table(
        "execution_metadata",
        sa.Column("created_at", TIMESTAMPTZ, nullable=False),
        sa.Column("started_at", TIMESTAMPTZ),
        sa.Column("completed_at", TIMESTAMPTZ),
        sa.Column("duration_ms", sa.Integer()),
        sa.Column("total_steps", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("completed_steps", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("job_id", UUID, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("organization_id", UUID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("workflow_id", UUID, nullable=False),
        sa.Column("client_id", UUID),
        sa.Column("claim_submission_id", UUID),
        sa.Column("primary_account_id", UUID),
        sa.Column("error_code", sa.String(50)),
        sa.Column("error_message", sa.String(500)),
        # The database refuses a reference to another organization's row.
        sa.ForeignKeyConstraint(
            ["organization_id", "workflow_id"], ["workflows.organization_id", "workflows.id"]
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "client_id"], ["clients.organization_id", "clients.id"]
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "claim_submission_id"],
            ["claim_submissions.organization_id", "claim_submissions.id"],
        ),
        sa.ForeignKeyConstraint(
            ["organization_id", "primary_account_id"],
            ["credentials.organization_id", "credentials.id"],
        ),
        sa.Index(LISTING_INDEX, sa.text("uuid_hash(organization_id)"), "created_at").ddl_if(
            dialect="postgresql"
        ),
        sa.Index(
            "ix_execution_metadata_organization_id_created_at", "organization_id", "created_at"
        ).ddl_if(dialect="sqlite"),
    )
    if dialect() == "postgresql":
        # The planner must know the hash depends on the uuid, or it multiplies the two
        # equalities' selectivities and sorts a handful of rows instead of walking the index.
        op.execute(
            f"CREATE STATISTICS {LISTING_STATISTICS} (dependencies) "
            "ON organization_id, uuid_hash(organization_id) FROM execution_metadata"
        )
    create_table(
        "execution_progress",
        sa.Column(
            "job_id",
            UUID,
            sa.ForeignKey("execution_metadata.job_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("completed_steps", sa.SmallInteger(), nullable=False),
        sa.Column("total_steps", sa.SmallInteger(), nullable=False),
        postgresql_with={"autovacuum_vacuum_scale_factor": 0, "autovacuum_vacuum_threshold": 1000},
    )
    create_table(
        "execution_daily_summary",
        sa.Column("organization_id", UUID, primary_key=True),
        sa.Column("workflow_id", UUID, primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("duration_total_ms", sa.BigInteger(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("queued", sa.Integer(), nullable=False),
        sa.Column("running", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("timed_out", sa.Integer(), nullable=False),
        sa.Column("timed_runs", sa.Integer(), nullable=False),
        sa.Column("duration_p50_ms", sa.Integer()),
        sa.Column("duration_p95_ms", sa.Integer()),
    )
    create_table(
        "execution_summary_dirty",
        sa.Column("organization_id", UUID, primary_key=True),
        sa.Column("workflow_id", UUID, primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
    )
    create_table(
        "execution_metadata_state",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("recorded_at", TIMESTAMPTZ, nullable=False),
        sa.Column("details", JSONB, nullable=False),
    )
    if dialect() == "postgresql":
        for statement in SUMMARY_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    refuse_if_rows(revision, DOWNGRADE_REFUSED_WITH_ROWS)
    if dialect() == "postgresql":
        for statement in DROP_SUMMARY_TRIGGERS:
            op.execute(statement)
    drop_tables(*reversed(NEW_TABLES))
    rename_table("execution_metadata_legacy", "execution_metadata")
