"""Jobs and their reference data (organizations, workflows, clients, claims, credentials)."""

from execstore.jobs.repository import JobDeletion, JobRepository, ReferenceRepository
from execstore.jobs.types import (
    ClaimSubmissionRecord,
    ClientRecord,
    CredentialRecord,
    JobRecord,
    OrganizationRecord,
    WorkflowRecord,
)

__all__ = [
    "ClaimSubmissionRecord",
    "ClientRecord",
    "CredentialRecord",
    "JobDeletion",
    "JobRecord",
    "JobRepository",
    "OrganizationRecord",
    "ReferenceRepository",
    "WorkflowRecord",
]
