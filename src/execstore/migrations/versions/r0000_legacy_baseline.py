"""legacy_baseline: the pre-optimization schema, so an existing database can be adopted.

On a database that already has these tables (made by the orchestration service's own
tooling), stamp this revision instead of running it: ``execstore db stamp legacy_baseline``.

Revision ID: legacy_baseline
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

from execstore.schema.legacy import legacy_metadata

revision = "legacy_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    legacy_metadata.create_all(op.get_bind())


def downgrade() -> None:
    legacy_metadata.drop_all(op.get_bind())
