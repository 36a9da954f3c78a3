"""Jobs and the reference data the orchestration service owns.

These tables are the legacy ones converted in place (``add_varchar_limits``: native
uuids and ``timestamptz``), so their columns keep the legacy order, ``id`` first and
``created_at`` last; the models declare them in that order, as every migrated database
has them.

Organizations, workflows, clients, claim submissions and credentials carry a unique
``(organization_id, id)`` so that rows naming them can use a composite foreign key
(:func:`~execstore.schema.base.owned_by`): the database refuses a job on another
organization's workflow. ``jobs`` itself has no such index (it would cost about 48 B per
job); rows that name a job are checked by their repository in the same statement.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from execstore.schema.base import Base, job_fk, owned_by
from execstore.schema.types import BoundedString, SafeText, uuid_array

__all__ = [
    "ClaimSubmission",
    "Client",
    "Credential",
    "HealingAttempt",
    "HealingSuggestion",
    "Job",
    "Organization",
    "ScheduleExecution",
    "Workflow",
]


def _org_fk() -> Any:
    return sa.ForeignKey("organizations.id")


def _tenant_key() -> sa.UniqueConstraint:
    return sa.UniqueConstraint("organization_id", "id")


class Organization(Base):
    """A tenant; every read and write is scoped to one."""

    __tablename__ = "organizations"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(SafeText())
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class Workflow(Base):
    """A workflow definition; execution rows refer to it by id and join its name."""

    __tablename__ = "workflows"
    __table_args__ = (_tenant_key(),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(_org_fk())
    name: Mapped[str] = mapped_column(SafeText())
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class Client(Base):
    """A provider the claims are filed for."""

    __tablename__ = "clients"
    __table_args__ = (_tenant_key(),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(_org_fk())
    name: Mapped[str] = mapped_column(SafeText())
    npi: Mapped[str | None] = mapped_column(SafeText())
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class ClaimSubmission(Base):
    """A claim; holds the patient (insuree) name and id that metadata used to copy."""

    __tablename__ = "claim_submissions"
    __table_args__ = (_tenant_key(), owned_by("clients", "client_id"))
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(_org_fk())
    client_id: Mapped[uuid.UUID | None]
    patient_name: Mapped[str | None] = mapped_column(SafeText())
    patient_id: Mapped[str | None] = mapped_column(SafeText())
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class Credential(Base):
    """A payer-portal account a job logs in with."""

    __tablename__ = "credentials"
    __table_args__ = (_tenant_key(),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(_org_fk())
    name: Mapped[str] = mapped_column(SafeText())
    portal: Mapped[str | None] = mapped_column(SafeText())
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class Job(Base):
    """One run of a workflow; ``result`` holds a slim summary, the detail lives in a blob."""

    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index(None, "organization_id", "status"),
        owned_by("workflows", "workflow_id"),
        owned_by("clients", "client_id"),
        owned_by("claim_submissions", "claim_submission_id"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(_org_fk())
    workflow_id: Mapped[uuid.UUID]
    client_id: Mapped[uuid.UUID | None]
    claim_submission_id: Mapped[uuid.UUID | None]
    credential_ids: Mapped[list[uuid.UUID]] = mapped_column(uuid_array(), default=list)
    status: Mapped[str] = mapped_column(SafeText(), server_default="pending", default="pending")
    error_message: Mapped[str | None] = mapped_column(BoundedString(2000))
    result: Mapped[dict[str, Any] | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
    started_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]


class ScheduleExecution(Base):
    """One firing of a schedule."""

    __tablename__ = "schedule_executions"
    __table_args__ = (owned_by("workflows", "workflow_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(_org_fk())
    workflow_id: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(SafeText())
    error_stack: Mapped[str | None] = mapped_column(BoundedString(10000))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class HealingAttempt(Base):
    """A self-healing attempt on a failed step.

    Keyed ``(job_id, id)``, not ``id`` alone: it lives on its job's shard when the schema
    is distributed (``execstore.schema.distribution``).
    """

    __tablename__ = "healing_attempts"
    __table_args__ = (sa.PrimaryKeyConstraint("job_id", "id"),)
    id: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4)
    job_id: Mapped[uuid.UUID] = mapped_column(job_fk())
    step_index: Mapped[int] = mapped_column(sa.Integer())
    reasoning: Mapped[str] = mapped_column(BoundedString(2000))
    succeeded: Mapped[bool] = mapped_column(server_default=sa.false(), default=False)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())


class HealingSuggestion(Base):
    """A suggested fix for a recurring error pattern."""

    __tablename__ = "healing_suggestions"
    __table_args__ = (owned_by("workflows", "workflow_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    organization_id: Mapped[uuid.UUID] = mapped_column(_org_fk())
    workflow_id: Mapped[uuid.UUID | None]
    error_pattern: Mapped[str] = mapped_column(BoundedString(1000))
    dismiss_reason: Mapped[str | None] = mapped_column(BoundedString(500))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
