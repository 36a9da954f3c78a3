"""The public types of jobs and their reference data."""

from __future__ import annotations

import uuid
from typing import Any

from execstore.repository import PublicModel, UtcDateTime

__all__ = [
    "ClaimSubmissionRecord",
    "ClientRecord",
    "CredentialRecord",
    "JobRecord",
    "OrganizationRecord",
    "WorkflowRecord",
]


class OrganizationRecord(PublicModel):
    """An organization (tenant)."""

    id: uuid.UUID
    name: str


class WorkflowRecord(PublicModel):
    """A workflow."""

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str


class ClientRecord(PublicModel):
    """A client (provider)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    npi: str | None


class ClaimSubmissionRecord(PublicModel):
    """A claim submission."""

    id: uuid.UUID
    organization_id: uuid.UUID
    client_id: uuid.UUID | None
    patient_name: str | None
    patient_id: str | None


class CredentialRecord(PublicModel):
    """A payer-portal account."""

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    portal: str | None


class JobRecord(PublicModel):
    """A job as the orchestration service sees it (``result`` is the slim summary)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    workflow_id: uuid.UUID
    client_id: uuid.UUID | None
    claim_submission_id: uuid.UUID | None
    credential_ids: list[uuid.UUID]
    status: str
    error_message: str | None
    result: dict[str, Any] | None
    created_at: UtcDateTime
    started_at: UtcDateTime | None
    completed_at: UtcDateTime | None
