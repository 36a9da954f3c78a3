"""contract_phi_audit: drop ``phi_audit_log_legacy`` once its backfill has moved every row (contract).

Refuses (MigrationRequired, nothing changed) while the legacy table still holds rows:
run ``execstore backfill audit`` until it reports nothing left, then upgrade. A contract
revision is optional for running execstore (see
``execstore.migrations.runner.compatible_revisions``); the downgrade recreates the
empty legacy table.

Revision ID: contract_phi_audit
Revises: contract_execution_log
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

from execstore.errors import MigrationRequired
from execstore.schema.audit import phi_audit_log_legacy

revision = "contract_phi_audit"
down_revision = "contract_execution_log"
branch_labels = None
depends_on = None
contract = True


def upgrade() -> None:
    bind = op.get_bind()
    left = bind.exec_driver_sql("SELECT count(*) FROM phi_audit_log_legacy").scalar()
    if left:
        raise MigrationRequired(
            f"phi_audit_log_legacy still holds {left} record(s) not yet in the audit chain: "
            "run `execstore backfill audit` until nothing is left (rows it sets aside "
            "need fixing first), then upgrade again"
        )
    op.drop_table("phi_audit_log_legacy")


def downgrade() -> None:
    phi_audit_log_legacy.create(op.get_bind())
