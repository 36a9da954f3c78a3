"""contract_phi_audit: drop ``phi_audit_log_legacy`` once its backfill has moved every row (contract).

Refuses (BackfillIncomplete, nothing changed) while the legacy table holds rows and the
audit backfill has not recorded its completion in ``backfill_completions``: run
``execstore backfill audit`` until it reports nothing left, then upgrade. A contract
revision is optional for running execstore (see
``execstore.migrations.runner.compatible_revisions``).

Going down re-creates the legacy table empty and drops nothing (its records live on in
the audit chain); upgrading again drops the empty table at once.

Revision ID: contract_phi_audit
Revises: contract_execution_log
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

revision = "contract_phi_audit"
down_revision = "contract_execution_log"
branch_labels = None
depends_on = None
contract = True
BACKFILL = "audit"  # the completion record this step requires

DROPPED = ("phi_audit_log_legacy",)
# Going down only re-creates an empty table.
DOWNGRADE_REFUSED_WITH_ROWS: tuple[str, ...] = ()


def upgrade() -> None:
    require_backfill_complete(
        op.get_bind(),
        BACKFILL,
        legacy_table="phi_audit_log_legacy",
        how="run `execstore backfill audit` until nothing is left (rows it sets aside need "
        "fixing first)",
    )
    op.drop_table("phi_audit_log_legacy")


def downgrade() -> None:
    create_table(
        "phi_audit_log_legacy",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("organization_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text()),
        sa.Column("job_id", sa.Text()),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text()),
        sa.Column("details", JSONB),
        sa.Column("ip_address", sa.Text()),
        sa.Column("user_agent", sa.Text()),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Index("ix_phi_audit_log_legacy_job_id", "job_id"),
        sa.Index(
            "ix_phi_audit_log_legacy_organization_id_created_at", "organization_id", "created_at"
        ),
    )
