"""contract_execution_metadata: drop execution_metadata_legacy once its backfill has moved every row (contract).

Refuses (BackfillIncomplete, nothing changed) unless the legacy table is empty, or the
last ``execstore backfill metadata --check`` found no unmigrated rows and no unexplained
mismatches *and* the legacy table is exactly as that check saw it (same row count, same
latest ``updated_at``) *and*, checked again here, every legacy row whose job still
exists has its slim row. Legacy rows of jobs deleted since are dropped with the table:
before ``add_varchar_limits`` detached them, the legacy foreign key deleted them with
their job.

The check records what it saw in ``execution_metadata_state`` (name ``backfill_check``:
``unmigrated``, ``unexplained``, ``legacy_rows``, ``legacy_updated_at``); this revision
reads that record and computes the fingerprint itself, the same way.

A contract revision is optional for running execstore (see
``execstore.migrations.runner.compatible_revisions``). Going down re-creates the legacy
table empty and drops nothing: the rows it held live on in ``execution_metadata``, and
upgrading again drops the empty table at once.

Revision ID: contract_execution_metadata
Revises: compact_phi_audit
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from execstore.errors import BackfillIncomplete
from execstore.migrations.helpers import (
    LEGACY_TIMESTAMP,
    TEXT_ARRAY,
    create_table,
    legacy_uuid_sql,
)

revision = "contract_execution_metadata"
down_revision = "compact_phi_audit"
branch_labels = None
depends_on = None
contract = True

LEGACY = "execution_metadata_legacy"
DROPPED = (LEGACY,)
# Going down only re-creates an empty table.
DOWNGRADE_REFUSED_WITH_ROWS: tuple[str, ...] = ()

CHECK_STATE = "backfill_check"
_HOW = (
    "run `execstore backfill metadata`, then `execstore backfill metadata --check` until it "
    "reports no unmigrated rows and no unexplained mismatches, then upgrade again"
)


def legacy_fingerprint(bind: sa.Connection) -> dict[str, Any]:
    """The legacy table's row count and latest ``updated_at``, as the check records them."""
    legacy = sa.table(LEGACY, sa.column("updated_at", sa.DateTime()))
    count, latest = bind.execute(
        sa.select(sa.func.count(), sa.func.max(legacy.c.updated_at)).select_from(legacy)
    ).one()
    return {
        "legacy_rows": int(count),
        "legacy_updated_at": None if latest is None else str(latest),
    }


def _unmigrated(bind: sa.Connection) -> int:
    job = legacy_uuid_sql(bind, "l.job_id")
    return int(
        bind.exec_driver_sql(
            f"SELECT count(*) FROM {LEGACY} l "
            f"WHERE NOT EXISTS (SELECT 1 FROM execution_metadata s WHERE s.job_id = {job}) "
            f"AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = {job})"
        ).scalar_one()
    )


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table(LEGACY):
        return
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
        missing = _unmigrated(bind)
        if missing:
            raise BackfillIncomplete(f"{missing} legacy row(s) have no slim row yet: " + _HOW)
    op.drop_table(LEGACY)


def downgrade() -> None:
    create_table(
        LEGACY,
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("job_id", sa.Text(), nullable=False, unique=True),
        sa.Column("organization_id", sa.Text(), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("workflow_name", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text()),
        sa.Column("client_name", sa.Text()),
        sa.Column("client_npi", sa.Text()),
        sa.Column("claim_submission_id", sa.Text()),
        sa.Column("insuree_name", sa.Text()),
        sa.Column("insuree_id", sa.Text()),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("progress_percent", sa.Numeric(5, 2), nullable=False, server_default="0"),
        sa.Column("total_steps", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("completed_steps", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False),
        sa.Column("started_at", LEGACY_TIMESTAMP),
        sa.Column("completed_at", LEGACY_TIMESTAMP),
        sa.Column("duration_ms", sa.Integer()),
        sa.Column("error_code", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.Column("primary_account_id", sa.Text()),
        sa.Column("primary_account_name", sa.Text()),
        sa.Column("all_account_ids", TEXT_ARRAY, nullable=False),
        sa.Column("all_account_names", TEXT_ARRAY, nullable=False),
        sa.Column("account_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Index(
            "ix_execution_metadata_legacy_organization_id_status_created_at",
            "organization_id",
            "status",
            "created_at",
        ),
        sa.Index("ix_execution_metadata_legacy_workflow_id", "workflow_id"),
    )
