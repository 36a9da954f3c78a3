"""contract_execution_metadata: drop execution_metadata_legacy once its backfill has moved every row (contract).

Placeholder in the chain, filled by its capability. A contract revision is optional for
running execstore (see ``execstore.migrations.runner.compatible_revisions``).

Revision ID: contract_execution_metadata
Revises: compact_phi_audit
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "contract_execution_metadata"
down_revision = "compact_phi_audit"
branch_labels = None
depends_on = None
contract = True


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
