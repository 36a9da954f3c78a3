"""contract_execution_log: drop execution_log once its backfill has moved every row (contract).

Placeholder in the chain, filled by its capability. A contract revision is optional for
running execstore (see ``execstore.migrations.runner.compatible_revisions``).

Revision ID: contract_execution_log
Revises: contract_rag_rules
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "contract_execution_log"
down_revision = "contract_rag_rules"
branch_labels = None
depends_on = None
contract = True


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
