"""contract_phi_audit: drop the legacy audit table once its backfill has moved every row (contract).

Placeholder in the chain, filled by its capability. A contract revision is optional for
running execstore (see ``execstore.migrations.runner.compatible_revisions``).

Revision ID: contract_phi_audit
Revises: contract_execution_log
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "contract_phi_audit"
down_revision = "contract_execution_log"
branch_labels = None
depends_on = None
contract = True


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
