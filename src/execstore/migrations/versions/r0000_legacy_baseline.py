"""legacy_baseline: the pre-optimization schema, so an existing database can be adopted.

On a database that already has these tables (made by the orchestration service's own
tooling), stamp this revision instead of running it: ``execstore db stamp legacy_baseline``.
Text ids, ``timestamp(3)`` without time zone, unbounded text and JSON arrays: the shapes
the plan sets out to remove, spelled out here as the orchestration service made them.

Going down to ``base`` drops every table, so it is refused while any of them holds a row.

Revision ID: legacy_baseline
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa

from execstore.migrations.helpers import (
    JSONB,
    LEGACY_TIMESTAMP,
    TEXT_ARRAY,
    create_table,
    drop_tables,
    refuse_if_rows,
)

revision = "legacy_baseline"
down_revision = None
branch_labels = None
depends_on = None

NEW_TABLES = (
    "organizations",
    "phi_audit_log",
    "clients",
    "credentials",
    "workflows",
    "claim_submissions",
    "healing_suggestions",
    "schedule_executions",
    "jobs",
    "execution_log",
    "execution_metadata",
    "execution_rag_rules",
    "execution_screenshots",
    "healing_attempts",
)

# Checked before any downgrade step runs (execstore.migrations.runner), and again here.
DOWNGRADE_REFUSED_WITH_ROWS = NEW_TABLES


def upgrade() -> None:
    create_table(
        "organizations",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
    )

    create_table(
        "phi_audit_log",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("organization_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Text()),
        sa.Column("job_id", sa.Text()),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("resource_type", sa.Text(), nullable=False),
        sa.Column("resource_id", sa.Text()),
        sa.Column("details", JSONB),
        sa.Column("ip_address", sa.Text()),
        sa.Column("user_agent", sa.Text()),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Index("ix_phi_audit_log_job_id", "job_id"),
        sa.Index("ix_phi_audit_log_organization_id_created_at", "organization_id", "created_at"),
    )

    create_table(
        "clients",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("organization_id", sa.Text(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("npi", sa.Text()),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
    )

    create_table(
        "credentials",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("organization_id", sa.Text(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("portal", sa.Text()),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
    )

    create_table(
        "workflows",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("organization_id", sa.Text(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
    )

    create_table(
        "claim_submissions",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("organization_id", sa.Text(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("client_id", sa.Text(), sa.ForeignKey("clients.id")),
        sa.Column("patient_name", sa.Text()),
        sa.Column("patient_id", sa.Text()),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
    )

    create_table(
        "healing_suggestions",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("organization_id", sa.Text(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("workflow_id", sa.Text(), sa.ForeignKey("workflows.id")),
        sa.Column("error_pattern", sa.Text(), nullable=False),
        sa.Column("dismiss_reason", sa.Text()),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
    )

    create_table(
        "schedule_executions",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("organization_id", sa.Text(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("workflow_id", sa.Text(), sa.ForeignKey("workflows.id")),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("error_stack", sa.Text()),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
    )

    create_table(
        "jobs",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("organization_id", sa.Text(), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("workflow_id", sa.Text(), sa.ForeignKey("workflows.id"), nullable=False),
        sa.Column("client_id", sa.Text(), sa.ForeignKey("clients.id")),
        sa.Column("claim_submission_id", sa.Text(), sa.ForeignKey("claim_submissions.id")),
        sa.Column("credential_ids", TEXT_ARRAY, nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("error_message", sa.Text()),
        sa.Column("result", JSONB),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("started_at", LEGACY_TIMESTAMP),
        sa.Column("completed_at", LEGACY_TIMESTAMP),
        sa.Index("ix_jobs_organization_id_status", "organization_id", "status"),
    )

    create_table(
        "execution_log",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column(
            "job_id", sa.Text(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_name", sa.String(500)),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("metadata", JSONB),
        sa.Column("timestamp", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Column("duration", sa.Integer()),
        sa.Index("ix_execution_log_job_id_timestamp", "job_id", "timestamp"),
    )

    create_table(
        "execution_metadata",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column(
            "job_id",
            sa.Text(),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
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
            "ix_execution_metadata_organization_id_status_created_at",
            "organization_id",
            "status",
            "created_at",
        ),
        sa.Index("ix_execution_metadata_workflow_id", "workflow_id"),
    )

    create_table(
        "execution_rag_rules",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column(
            "job_id",
            sa.Text(),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("organization_id", sa.Text(), nullable=False),
        sa.Column("payers", JSONB, nullable=False, server_default="[]"),
        sa.Column("modifiers", JSONB, nullable=False, server_default="[]"),
        sa.Column("rules", JSONB, nullable=False, server_default="[]"),
        sa.Column("rag_retrieval_time_ms", sa.Integer(), nullable=False),
        sa.Column("total_rules_retrieved", sa.Integer(), nullable=False),
        sa.Column("total_rules_used", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("average_retrieval_score", sa.Numeric(5, 4)),
        sa.Column("retrieved_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Index("ix_execution_rag_rules_organization_id", "organization_id"),
    )

    create_table(
        "execution_screenshots",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column(
            "job_id", sa.Text(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("captured_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
        sa.Index("ix_execution_screenshots_job_id", "job_id"),
    )

    create_table(
        "healing_attempts",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column(
            "job_id", sa.Text(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", LEGACY_TIMESTAMP, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    refuse_if_rows(revision, DOWNGRADE_REFUSED_WITH_ROWS)
    drop_tables(*reversed(NEW_TABLES))
