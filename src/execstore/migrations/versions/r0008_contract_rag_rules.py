"""contract_rag_rules: drop execution_rag_rules_legacy once its backfill has moved every row (contract).

Placeholder in the chain, filled by its capability. A contract revision is optional for
running execstore (see ``execstore.migrations.runner.compatible_revisions``).

Revision ID: contract_rag_rules
Revises: contract_execution_metadata
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "contract_rag_rules"
down_revision = "contract_execution_metadata"
branch_labels = None
depends_on = None
contract = True


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
