"""contract_execution_metadata: drop execution_metadata_legacy once its backfill has moved every row (contract).

Refuses (BackfillIncomplete, nothing changed) unless the legacy table is empty, or the
last ``execstore backfill metadata --check`` found no unmigrated rows and no unexplained
mismatches *and* the legacy table is exactly as that check saw it (same row count, same
latest ``updated_at``) *and*, checked again here, every legacy row whose job still
exists has its slim row. Legacy rows of jobs deleted since are dropped with the table:
before ``add_varchar_limits`` detached them, the legacy foreign key deleted them with
their job.

A contract revision is optional for running execstore (see
``execstore.migrations.runner.compatible_revisions``). Going down re-creates the legacy
table empty: the rows it held live on in ``execution_metadata``.

Revision ID: contract_execution_metadata
Revises: compact_phi_audit
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from execstore.errors import BackfillIncomplete
from execstore.ids import legacy_uuid_sql
from execstore.metadata.check import CHECK_STATE, legacy_fingerprint
from execstore.schema.base import new_metadata, transitional_copy
from execstore.schema.legacy import execution_metadata as legacy_table

revision = "contract_execution_metadata"
down_revision = "compact_phi_audit"
branch_labels = None
depends_on = None
contract = True

LEGACY = "execution_metadata_legacy"
_HOW = (
    "run `execstore backfill metadata`, then `execstore backfill metadata --check` until it "
    "reports no unmigrated rows and no unexplained mismatches, then upgrade again"
)


def _legacy() -> sa.Table:
    return transitional_copy(legacy_table, LEGACY, new_metadata())


def _unmigrated(bind: sa.Connection, table: sa.Table) -> int:
    job = legacy_uuid_sql(table.c.job_id, bind.dialect.name)
    slim = sa.table("execution_metadata", sa.column("job_id"))
    jobs = sa.table("jobs", sa.column("id"))
    return int(
        bind.execute(
            sa.select(sa.func.count())
            .select_from(table)
            .where(
                ~sa.exists().where(slim.c.job_id == job),
                sa.exists().where(jobs.c.id == job),
            )
        ).scalar_one()
    )


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table(LEGACY):
        return
    table = _legacy()
    now = legacy_fingerprint(bind)
    if now["legacy_rows"]:
        state = sa.table(
            "execution_metadata_state", sa.column("name"), sa.column("details", sa.JSON())
        )
        found = bind.execute(
            sa.select(state.c.details).where(state.c.name == CHECK_STATE)
        ).scalar_one_or_none()
        if found is None:
            raise BackfillIncomplete(
                f"{LEGACY} holds {now['legacy_rows']} row(s) and the backfill check never ran: "
                + _HOW
            )
        if found.get("unmigrated") or found.get("unexplained"):
            raise BackfillIncomplete(
                f"the last backfill check found {found.get('unmigrated', 0)} unmigrated row(s) "
                f"and {found.get('unexplained', 0)} unexplained mismatch(es): " + _HOW
            )
        seen = {k: found.get(k) for k in now}
        if seen != now:
            raise BackfillIncomplete(
                f"{LEGACY} changed since the last backfill check (then {seen}, now {now}): " + _HOW
            )
        missing = _unmigrated(bind, table)
        if missing:
            raise BackfillIncomplete(f"{missing} legacy row(s) have no slim row yet: " + _HOW)
    op.drop_table(LEGACY)


def downgrade() -> None:
    _legacy().create(op.get_bind())
