"""contract_execution_log: drop the legacy ``execution_log`` once its rows have moved.

``execstore backfill logs`` copies the legacy rows into ``execution_log_partitioned``,
swaps (the legacy table stops accepting writes), verifies counts and checksums and then
empties the legacy table. This revision drops the empty table; it refuses, changing
nothing, while the table still holds rows (a backfill that has not finished and
verified, or rows it set aside). A contract revision is optional for running execstore
(see ``execstore.migrations.runner.compatible_revisions``).

Downgrade recreates the table empty (its rows live on in the partitioned table).

Revision ID: contract_execution_log
Revises: contract_rag_rules
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from execstore.errors import MigrationRequired
from execstore.schema.base import new_metadata, transitional_copy
from execstore.schema.legacy import execution_log

revision = "contract_execution_log"
down_revision = "contract_rag_rules"
branch_labels = None
depends_on = None
contract = True


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("execution_log"):
        return
    left = bind.exec_driver_sql("SELECT count(*) FROM execution_log").scalar_one()
    if left:
        raise MigrationRequired(
            f"execution_log still holds {left} row(s): run `execstore backfill logs` until it "
            "reports the migration verified (rows it sets aside must be fixed or deleted), "
            "then upgrade again (nothing was changed)"
        )
    op.drop_table("execution_log")  # its triggers go with it
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS execstore_log_backfill_capture()")
        op.execute("DROP FUNCTION IF EXISTS execstore_log_retired()")


def downgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("execution_log"):
        transitional_copy(execution_log, "execution_log", new_metadata()).create(bind)
