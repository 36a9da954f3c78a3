"""compact_phi_audit: the compact, hash-chained PHI audit tables (expand).

The legacy ``phi_audit_log`` (text ids, JSON details) becomes ``phi_audit_log_legacy``
until ``execstore backfill audit`` moves its rows into the chain; the new
``phi_audit_log`` keys on ``(organization_id, seq)`` (its place in the organization's
hash chain) with its catalog of repeated strings, compression dictionaries, chain heads
and checkpoint index, and is made append-only by a trigger (both backends): UPDATE is
refused, and DELETE of a record no archive pointer row covers; on PostgreSQL TRUNCATE
too.

Revision ID: compact_phi_audit
Revises: slim_execution_metadata
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from execstore.migrations.helpers import (
    INET,
    TIMESTAMPTZ,
    UUID,
    create_table,
    dialect,
    drop_tables,
    refuse_if_rows,
    rename_table,
)

revision = "compact_phi_audit"
down_revision = "slim_execution_metadata"
branch_labels = None
depends_on = None

NEW_TABLES = (
    "phi_audit_log",
    "phi_audit_catalog",
    "phi_audit_chain_heads",
    "phi_audit_checkpoints",
    "phi_audit_dictionaries",
)
RENAMED = {"phi_audit_log": "phi_audit_log_legacy"}

# Checked before any downgrade step runs (execstore.migrations.runner), and again here.
DOWNGRADE_REFUSED_WITH_ROWS = NEW_TABLES

_REFUSE = (
    "phi_audit_log is append-only: {op} refused (records leave only through archival, "
    "after their segment is archived and verified)"
)
_COVERED = (
    "EXISTS (SELECT 1 FROM phi_audit_archives a WHERE a.organization_id = OLD.organization_id"
    " AND OLD.seq BETWEEN a.first_seq AND a.last_seq)"
)
APPEND_ONLY = {
    "postgresql": (
        f"""
            CREATE FUNCTION phi_audit_log_append_only() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' AND {_COVERED} THEN
                    RETURN OLD;
                END IF;
                RAISE EXCEPTION '{_REFUSE.format(op="%")}', TG_OP USING ERRCODE = 'restrict_violation';
            END $$
            """,
        "CREATE TRIGGER phi_audit_log_append_only BEFORE UPDATE OR DELETE ON phi_audit_log "
        "FOR EACH ROW EXECUTE FUNCTION phi_audit_log_append_only()",
        "CREATE TRIGGER phi_audit_log_no_truncate BEFORE TRUNCATE ON phi_audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION phi_audit_log_append_only()",
    ),
    "sqlite": (
        "CREATE TRIGGER phi_audit_log_no_update BEFORE UPDATE ON phi_audit_log "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSE.format(op='UPDATE')}'); END",
        "CREATE TRIGGER phi_audit_log_no_delete BEFORE DELETE ON phi_audit_log "
        f"WHEN NOT {_COVERED} "
        f"BEGIN SELECT RAISE(ABORT, '{_REFUSE.format(op='DELETE')}'); END",
    ),
}
DROP_APPEND_ONLY = {
    "postgresql": (
        "DROP TRIGGER IF EXISTS phi_audit_log_no_truncate ON phi_audit_log",
        "DROP TRIGGER IF EXISTS phi_audit_log_append_only ON phi_audit_log",
        "DROP FUNCTION IF EXISTS phi_audit_log_append_only()",
    ),
    "sqlite": (
        "DROP TRIGGER IF EXISTS phi_audit_log_no_update",
        "DROP TRIGGER IF EXISTS phi_audit_log_no_delete",
    ),
}


def upgrade() -> None:
    rename_table("phi_audit_log", "phi_audit_log_legacy")
    create_table(
        "phi_audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False),
        # The first 8 bytes of the chain hash after this record (signed, big-endian).
        sa.Column("link", sa.BigInteger(), nullable=False),
        sa.Column("organization_id", UUID, nullable=False),
        sa.Column("id", UUID, nullable=False),
        sa.Column("job_id", UUID),
        sa.Column("claim_id", UUID),
        # Repeated strings are ids into phi_audit_catalog.
        sa.Column("actor", sa.Integer()),
        sa.Column("action", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.Integer()),
        sa.Column("user_agent", sa.Integer()),
        sa.Column("ip_text", sa.Integer()),
        sa.Column("dictionary", sa.SmallInteger(), nullable=False),
        sa.Column("source_ip", INET),
        sa.Column("resource_id", sa.Text()),
        sa.Column("patient_ref", sa.Text()),
        sa.Column("details", sa.LargeBinary()),
        sa.PrimaryKeyConstraint("organization_id", "seq"),
        sa.Index(
            "ix_phi_audit_log_actor_seq",
            "actor",
            "seq",
            postgresql_where=sa.text("actor IS NOT NULL"),
            sqlite_where=sa.text("actor IS NOT NULL"),
        ),
        # Records arrive in time order: a BRIN index answers time ranges for almost nothing.
        sa.Index("ix_phi_audit_log_created_at", "created_at", postgresql_using="brin"),
        sa.Index(
            "ix_phi_audit_log_patient_ref_seq",
            "patient_ref",
            "seq",
            postgresql_where=sa.text("patient_ref IS NOT NULL"),
            sqlite_where=sa.text("patient_ref IS NOT NULL"),
        ),
    )
    create_table(
        "phi_audit_catalog",
        sa.Column("id", sa.Integer(), sa.Identity(), primary_key=True),
        sa.Column("digest", sa.BigInteger(), nullable=False),
        sa.Column("organization_id", UUID, nullable=False),
        sa.Column("kind", sa.SmallInteger(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.UniqueConstraint("organization_id", "kind", "digest"),
    )
    create_table(
        "phi_audit_chain_heads",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("archived_seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("last_at", TIMESTAMPTZ),
        sa.Column("checkpoint_claimed_at", TIMESTAMPTZ),
        sa.Column("organization_id", UUID, primary_key=True),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("archived_hash", sa.LargeBinary(32)),
    )
    create_table(
        "phi_audit_checkpoints",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False),
        sa.Column("written_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.Column("organization_id", UUID, nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("blob_key", sa.String(400), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "seq"),
    )
    create_table(
        "phi_audit_dictionaries",
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.Column("organization_id", UUID, primary_key=True),
        sa.Column("version", sa.SmallInteger(), primary_key=True, autoincrement=False),
        sa.Column("codec", sa.SmallInteger(), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.LargeBinary(32), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
    )
    for statement in APPEND_ONLY[dialect()]:
        op.execute(statement)


def downgrade() -> None:
    refuse_if_rows(revision, DOWNGRADE_REFUSED_WITH_ROWS)
    for statement in DROP_APPEND_ONLY[dialect()]:
        op.execute(statement)
    drop_tables(*reversed(NEW_TABLES))
    rename_table("phi_audit_log_legacy", "phi_audit_log")
