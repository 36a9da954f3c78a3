"""compact_phi_audit: the compact, hash-chained PHI audit tables (expand).

Placeholder in the chain, filled by the audit capability: the legacy ``phi_audit_log``
stays where it is until then.

Revision ID: compact_phi_audit
Revises: slim_execution_metadata
Create Date: 2026-12-02
"""

from __future__ import annotations

revision = "compact_phi_audit"
down_revision = "slim_execution_metadata"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
