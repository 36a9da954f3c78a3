"""add_archival_tables: pointer rows for archived results, logs and audit records.

Each pointer row says where a verified archive blob is and how to check it (sha256,
sizes, codec, format version) and whether the reconciler found it missing (``lost``),
never a URL or a secret; the same columns and types in every pointer table:

- ``job_result_archives``: one job's full output; the blob key is derived from the job
  and a document is one record, so neither is stored; the row packs without padding;
- ``execution_log_archives``: an organization's log lines of one month, sorted by job
  (``first_job``..``last_job`` and ``job_keys`` let reads skip chunks), with its key
  and record count;
- ``phi_audit_archives``: a segment ``first_seq..last_seq`` of an organization's chain,
  with its key and record count.

Also gives screenshots their slim table (key suffix, dimensions, time; native types; a
plain index on ``job_id``, no primary-key index): the legacy rows with full URLs become
``execution_screenshots_legacy`` until the result archival job moves them. On PostgreSQL
that table gets an index on its job id mapped to a uuid, the very expression the
archival job matches jobs with (measured: 7.2 s -> 12 ms per batch of 200 jobs over
500,000 legacy rows; about 14 B per legacy row until the table is drained).

Revision ID: add_archival_tables
Revises: partition_execution_logs
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from execstore.migrations.helpers import (
    BIGID,
    TIMESTAMPTZ,
    UUID,
    create_table,
    dialect,
    drop_tables,
    legacy_uuid_pg,
    refuse_if_rows,
    rename_table,
)

revision = "add_archival_tables"
down_revision = "partition_execution_logs"
branch_labels = None
depends_on = None

NEW_TABLES = (
    "job_result_archives",
    "execution_log_archives",
    "phi_audit_archives",
    "execution_screenshots",
)
RENAMED = {"execution_screenshots": "execution_screenshots_legacy"}

# Checked before any downgrade step runs (execstore.migrations.runner), and again here.
DOWNGRADE_REFUSED_WITH_ROWS = NEW_TABLES

LEGACY_JOB_UUID_INDEX = "ix_execution_screenshots_legacy_job_uuid"


def _pointer_columns() -> list[sa.Column[object]]:
    # What every archive pointer row holds about its blob (sizes are integer: an archive
    # holds at most 2 GiB - 1 bytes; lost: the reconciler found the blob missing).
    return [
        sa.Column("archived_at", TIMESTAMPTZ, nullable=False, server_default=sa.func.now()),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        sa.Column("stored_size", sa.Integer(), nullable=False),
        sa.Column("codec", sa.SmallInteger(), nullable=False),
        sa.Column("format_version", sa.SmallInteger(), nullable=False, server_default="1"),
        sa.Column("lost", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("sha256", sa.LargeBinary(32), nullable=False),
    ]


def _stored_key_columns() -> list[sa.Column[object]]:
    # A pointer whose key cannot be derived from its row stores it, and its record count.
    return [
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("blob_key", sa.String(400), nullable=False, unique=True),
    ]


def upgrade() -> None:
    rename_table("execution_screenshots", "execution_screenshots_legacy")
    if dialect() == "postgresql":
        op.execute(
            f"CREATE INDEX {LEGACY_JOB_UUID_INDEX} "
            f"ON execution_screenshots_legacy (({legacy_uuid_pg('job_id')}))"
        )
    create_table(
        "job_result_archives",
        sa.Column("job_id", UUID, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        *_pointer_columns(),
    )
    create_table(
        "execution_log_archives",
        sa.Column("start_date", TIMESTAMPTZ, nullable=False),
        sa.Column("end_date", TIMESTAMPTZ, nullable=False),
        sa.Column("id", BIGID, sa.Identity(), primary_key=True),
        sa.Column("organization_id", UUID, sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("first_job", UUID, nullable=False),
        sa.Column("last_job", UUID, nullable=False),
        sa.Column("source_id", sa.Integer()),
        sa.Column("revision", sa.SmallInteger(), nullable=False, server_default="0"),
        sa.Column("job_keys", sa.LargeBinary(), nullable=False),
        *_stored_key_columns(),
        *_pointer_columns(),
        sa.Index(
            "ix_execution_log_archives_organization_id_end_date", "organization_id", "end_date"
        ),
        sa.Index(
            "ix_execution_log_archives_organization_id_first_job", "organization_id", "first_job"
        ),
    )
    create_table(
        "phi_audit_archives",
        sa.Column("start_date", TIMESTAMPTZ, nullable=False),
        sa.Column("end_date", TIMESTAMPTZ, nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("id", UUID, primary_key=True),
        sa.Column("organization_id", UUID, nullable=False),
        sa.Column("end_hash", sa.LargeBinary(32), nullable=False),
        *_stored_key_columns(),
        *_pointer_columns(),
        sa.UniqueConstraint("organization_id", "first_seq"),
    )
    create_table(
        "execution_screenshots",
        sa.Column("captured_at", TIMESTAMPTZ, nullable=False),
        sa.Column("job_id", UUID, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ordinal", sa.SmallInteger(), nullable=False),
        sa.Column("step_index", sa.SmallInteger(), nullable=False),
        sa.Column("width", sa.SmallInteger()),
        sa.Column("height", sa.SmallInteger()),
        sa.Column("key_suffix", sa.Text(), nullable=False),
        sa.Index("ix_execution_screenshots_job_id", "job_id"),
    )


def downgrade() -> None:
    refuse_if_rows(revision, DOWNGRADE_REFUSED_WITH_ROWS)
    drop_tables(*reversed(NEW_TABLES))
    if dialect() == "postgresql":
        op.drop_index(LEGACY_JOB_UUID_INDEX, table_name="execution_screenshots_legacy")
    rename_table("execution_screenshots_legacy", "execution_screenshots")
