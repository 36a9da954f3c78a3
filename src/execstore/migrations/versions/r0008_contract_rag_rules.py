"""contract_rag_rules: drop execution_rag_rules_legacy once the RAG backfill has verified every row.

Refuses (BackfillIncomplete, nothing changed) while any legacy row is not marked in
``rag_backfill_verified``: run ``execstore backfill rag`` until it reports complete.
Writers in the ``legacy`` mode remove the mark of a row they change, so a row changed
after its backfill is moved and verified again before this step can run. After it,
the ``legacy`` and dual-write modes are refused (``ExecStore.open``).

Going down recreates the legacy table and refills it from the normalized contexts
(each row marked verified), so the dual-write modes find every context again.

Revision ID: contract_rag_rules
Revises: contract_execution_metadata
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from execstore.errors import BackfillIncomplete
from execstore.migrations.helpers import dialect
from execstore.schema.rag import (
    execution_rag_rules_legacy,
    legacy_job_uuid_index_sql,
    rag_backfill_verified,
)

revision = "contract_rag_rules"
down_revision = "contract_execution_metadata"
branch_labels = None
depends_on = None
contract = True


def upgrade() -> None:
    bind = op.get_bind()
    waiting = bind.execute(
        sa.select(sa.func.count())
        .select_from(execution_rag_rules_legacy)
        .where(
            ~sa.exists(
                sa.select(sa.literal(1)).where(
                    rag_backfill_verified.c.legacy_id == execution_rag_rules_legacy.c.id
                )
            )
        )
    ).scalar_one()
    if waiting:
        raise BackfillIncomplete(
            f"contract_rag_rules: {waiting} legacy RAG row(s) are not yet moved and verified; "
            "run `execstore backfill rag` until it reports complete (it lists rows set "
            "aside and why), then upgrade again (nothing was changed)"
        )
    op.drop_table("rag_backfill_verified")
    op.drop_table("execution_rag_rules_legacy")


def downgrade() -> None:
    bind = op.get_bind()
    execution_rag_rules_legacy.create(bind)
    if dialect() == "postgresql":
        op.execute(legacy_job_uuid_index_sql())
    rag_backfill_verified.create(bind)
    from execstore.rag.refill import refill_legacy

    refill_legacy(bind)
