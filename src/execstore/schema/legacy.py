"""The legacy (pre-optimization) schema: what a Prisma-managed database looks like today.

This is revision 0's state, kept as Core tables so that an existing database can be
adopted, so that tests and benchmarks can build one, and so the migrations have a fixed
starting point. Ids are 36-character text uuids, timestamps are ``timestamp(3)``
without time zone, text is unbounded and JSON holds arrays — exactly the shapes the
plan sets out to remove.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from execstore.schema.base import new_metadata

__all__ = ["LEGACY_TABLES", "legacy_metadata"]

legacy_metadata = new_metadata()

_ID = sa.Text
_TS = postgresql.TIMESTAMP(precision=3).with_variant(sa.DateTime(), "sqlite")
_JSON = postgresql.JSONB().with_variant(sa.JSON(), "sqlite")
_TEXT_ARRAY = postgresql.ARRAY(sa.Text()).with_variant(sa.JSON(), "sqlite")


def _id() -> sa.Column[str]:
    return sa.Column("id", _ID(), primary_key=True)


def _fk(name: str, target: str, *, nullable: bool = False, cascade: bool = False) -> sa.Column[str]:
    return sa.Column(
        name,
        _ID(),
        sa.ForeignKey(target, ondelete="CASCADE" if cascade else None),
        nullable=nullable,
    )


def _created() -> sa.Column[object]:
    return sa.Column("created_at", _TS, nullable=False, server_default=sa.func.now())


organizations = sa.Table(
    "organizations",
    legacy_metadata,
    _id(),
    sa.Column("name", sa.Text(), nullable=False),
    _created(),
)
workflows = sa.Table(
    "workflows",
    legacy_metadata,
    _id(),
    _fk("organization_id", "organizations.id"),
    sa.Column("name", sa.Text(), nullable=False),
    _created(),
)
clients = sa.Table(
    "clients",
    legacy_metadata,
    _id(),
    _fk("organization_id", "organizations.id"),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("npi", sa.Text()),
    _created(),
)
claim_submissions = sa.Table(
    "claim_submissions",
    legacy_metadata,
    _id(),
    _fk("organization_id", "organizations.id"),
    _fk("client_id", "clients.id", nullable=True),
    sa.Column("patient_name", sa.Text()),
    sa.Column("patient_id", sa.Text()),
    _created(),
)
credentials = sa.Table(
    "credentials",
    legacy_metadata,
    _id(),
    _fk("organization_id", "organizations.id"),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("portal", sa.Text()),
    _created(),
)
jobs = sa.Table(
    "jobs",
    legacy_metadata,
    _id(),
    _fk("organization_id", "organizations.id"),
    _fk("workflow_id", "workflows.id"),
    _fk("client_id", "clients.id", nullable=True),
    _fk("claim_submission_id", "claim_submissions.id", nullable=True),
    sa.Column("credential_ids", _TEXT_ARRAY, nullable=False),
    sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
    sa.Column("error_message", sa.Text()),
    sa.Column("result", _JSON),
    _created(),
    sa.Column("started_at", _TS),
    sa.Column("completed_at", _TS),
    sa.Index(None, "organization_id", "status"),
)
schedule_executions = sa.Table(
    "schedule_executions",
    legacy_metadata,
    _id(),
    _fk("organization_id", "organizations.id"),
    _fk("workflow_id", "workflows.id", nullable=True),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("error_stack", sa.Text()),
    _created(),
)
healing_attempts = sa.Table(
    "healing_attempts",
    legacy_metadata,
    _id(),
    _fk("job_id", "jobs.id", cascade=True),
    sa.Column("step_index", sa.Integer(), nullable=False),
    sa.Column("reasoning", sa.Text(), nullable=False),
    sa.Column("succeeded", sa.Boolean(), nullable=False, server_default=sa.false()),
    _created(),
)
healing_suggestions = sa.Table(
    "healing_suggestions",
    legacy_metadata,
    _id(),
    _fk("organization_id", "organizations.id"),
    _fk("workflow_id", "workflows.id", nullable=True),
    sa.Column("error_pattern", sa.Text(), nullable=False),
    sa.Column("dismiss_reason", sa.Text()),
    _created(),
)
execution_metadata = sa.Table(
    "execution_metadata",
    legacy_metadata,
    _id(),
    sa.Column(
        "job_id", _ID(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, unique=True
    ),
    sa.Column("organization_id", _ID(), nullable=False),
    sa.Column("workflow_id", _ID(), nullable=False),
    sa.Column("workflow_name", sa.Text(), nullable=False),
    sa.Column("client_id", _ID()),
    sa.Column("client_name", sa.Text()),
    sa.Column("client_npi", sa.Text()),
    sa.Column("claim_submission_id", _ID()),
    sa.Column("insuree_name", sa.Text()),
    sa.Column("insuree_id", sa.Text()),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("progress_percent", sa.Numeric(5, 2), nullable=False, server_default="0"),
    sa.Column("total_steps", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("completed_steps", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("started_at", _TS),
    sa.Column("completed_at", _TS),
    sa.Column("duration_ms", sa.Integer()),
    sa.Column("error_code", sa.Text()),
    sa.Column("error_message", sa.Text()),
    sa.Column("primary_account_id", _ID()),
    sa.Column("primary_account_name", sa.Text()),
    sa.Column("all_account_ids", _TEXT_ARRAY, nullable=False),
    sa.Column("all_account_names", _TEXT_ARRAY, nullable=False),
    sa.Column("account_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("updated_at", _TS, nullable=False, server_default=sa.func.now()),
    sa.Index(None, "organization_id", "status", "created_at"),
    sa.Index(None, "workflow_id"),
)
execution_rag_rules = sa.Table(
    "execution_rag_rules",
    legacy_metadata,
    _id(),
    sa.Column(
        "job_id", _ID(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, unique=True
    ),
    sa.Column("organization_id", _ID(), nullable=False),
    sa.Column("payers", _JSON, nullable=False, server_default="[]"),
    sa.Column("modifiers", _JSON, nullable=False, server_default="[]"),
    sa.Column("rules", _JSON, nullable=False, server_default="[]"),
    sa.Column("rag_retrieval_time_ms", sa.Integer(), nullable=False),
    sa.Column("total_rules_retrieved", sa.Integer(), nullable=False),
    sa.Column("total_rules_used", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("average_retrieval_score", sa.Numeric(5, 4)),
    sa.Column("retrieved_at", _TS, nullable=False, server_default=sa.func.now()),
    sa.Index(None, "organization_id"),
)
execution_log = sa.Table(
    "execution_log",
    legacy_metadata,
    _id(),
    sa.Column("job_id", _ID(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("step_index", sa.Integer(), nullable=False),
    sa.Column("step_name", sa.String(500)),
    sa.Column("level", sa.String(10), nullable=False),
    sa.Column("message", sa.Text(), nullable=False),
    sa.Column("metadata", _JSON),
    sa.Column("timestamp", _TS, nullable=False, server_default=sa.func.now()),
    sa.Column("duration", sa.Integer()),
    sa.Index(None, "job_id", "timestamp"),
)
execution_screenshots = sa.Table(
    "execution_screenshots",
    legacy_metadata,
    _id(),
    sa.Column("job_id", _ID(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("step_index", sa.Integer(), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("width", sa.Integer()),
    sa.Column("height", sa.Integer()),
    sa.Column("captured_at", _TS, nullable=False, server_default=sa.func.now()),
    sa.Index(None, "job_id"),
)
phi_audit_log = sa.Table(
    "phi_audit_log",
    legacy_metadata,
    _id(),
    sa.Column("organization_id", _ID(), nullable=False),
    sa.Column("user_id", _ID()),
    sa.Column("job_id", _ID()),
    sa.Column("action", sa.Text(), nullable=False),
    sa.Column("resource_type", sa.Text(), nullable=False),
    sa.Column("resource_id", sa.Text()),
    sa.Column("details", _JSON),
    sa.Column("ip_address", sa.Text()),
    sa.Column("user_agent", sa.Text()),
    _created(),
    sa.Index(None, "organization_id", "created_at"),
    sa.Index(None, "job_id"),
)

LEGACY_TABLES: tuple[sa.Table, ...] = tuple(legacy_metadata.sorted_tables)
