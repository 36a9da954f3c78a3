"""contract_execution_metadata: drop execution_metadata_legacy once its backfill has moved every row (contract).

Refuses (BackfillIncomplete, nothing changed) unless the legacy table is empty, or the
metadata backfill recorded its completion in ``backfill_completions`` (a complete
``execstore backfill metadata --check`` that found no unmigrated rows and no
unexplained mismatches writes it) and the table still holds the rows it held then.
Legacy rows of jobs deleted since are dropped with the table: before
``add_varchar_limits`` detached them, the legacy foreign key deleted them with their job.

A contract revision is optional for running execstore (see
``execstore.migrations.runner.compatible_revisions``). Going down re-creates the legacy
table empty and drops nothing: the rows it held live on in ``execution_metadata``, and
upgrading again drops the empty table at once.

Revision ID: contract_execution_metadata
Revises: compact_phi_audit
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from execstore.migrations.helpers import (
    LEGACY_TIMESTAMP,
    TEXT_ARRAY,
    create_table,
    require_backfill_complete,
)

revision = "contract_execution_metadata"
down_revision = "compact_phi_audit"
branch_labels = None
depends_on = None
contract = True
BACKFILL = "metadata"  # the completion record this step requires

LEGACY = "execution_metadata_legacy"
DROPPED = (LEGACY,)
# Going down only re-creates an empty table.
DOWNGRADE_REFUSED_WITH_ROWS: tuple[str, ...] = ()


def upgrade() -> None:
    require_backfill_complete(
        op.get_bind(),
        BACKFILL,
        legacy_table=LEGACY,
        how="run `execstore backfill metadata`, then `execstore backfill metadata --check` "
        "until it reports no unmigrated rows and no unexplained mismatches",
    )
    if sa.inspect(op.get_bind()).has_table(LEGACY):
        op.drop_table(LEGACY)


def downgrade() -> None:
    create_table(
        LEGACY,
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("job_id", sa.Text(), nullable=False, unique=True),
        sa.Column("organization_id", sa.Text(), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("workflow_name", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text()),
        sa.Column("client_name", sa.Text()),
        sa.Column("client_npi", sa.Text()),
        sa.Column("claim_submission_id", sa.Text()),
        sa.Column("insuree_name", sa.Text()),
        sa.Column("insuree_id", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("progress_percent", sa.Numeric(5, 2), nullable=False, server_default="0"),
        sa.Column("total_steps", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("completed_steps", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False),
        sa.Column("started_at", LEGACY_TIMESTAMP),
        sa.Column("completed_at", LEGACY_TIMESTAMP),
        sa.Column("duration_ms", sa.Integer()),
        sa.Column("error_code", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.Column("primary_account_id", sa.Text()),
        sa.Column("primary_account_name", sa.Text()),
        sa.Column("all_account_ids", TEXT_ARRAY, nullable=False),
        sa.Column("all_account_names", TEXT_ARRAY, nullable=False),
        sa.Column("account_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Index(
            "ix_execution_metadata_legacy_organization_id_status_created_at",
            "organization_id",
            "status",
            "created_at",
        ),
        sa.Index("ix_execution_metadata_legacy_workflow_id", "workflow_id"),
    )
