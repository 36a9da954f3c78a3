"""Jobs and their reference data: small repositories so execstore stands on its own.

These tables belong to the orchestration service; execstore only needs enough of them
to be used, demonstrated and tested alone, and to join names for dashboards.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa

from execstore.errors import translate_database_errors
from execstore.repositories.base import PublicModel, ScopedRepository
from execstore.schema import models as m

__all__ = [
    "ClaimSubmissionRecord",
    "ClientRecord",
    "CredentialRecord",
    "JobRecord",
    "JobRepository",
    "ReferenceRepository",
    "WorkflowRecord",
]


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
    created_at: dt.datetime
    started_at: dt.datetime | None
    completed_at: dt.datetime | None


class ReferenceRepository(ScopedRepository[m.Workflow]):
    """Create and read workflows, clients, claim submissions and credentials."""

    model_type = m.Workflow

    async def add_workflow(self, name: str, *, id: uuid.UUID | None = None) -> WorkflowRecord:
        """A new workflow in this organization."""
        row = m.Workflow(id=id or uuid.uuid4(), organization_id=self.organization_id, name=name)
        return WorkflowRecord.model_validate(await self._add(row))

    async def add_client(
        self, name: str, *, npi: str | None = None, id: uuid.UUID | None = None
    ) -> ClientRecord:
        """A new client in this organization."""
        row = m.Client(
            id=id or uuid.uuid4(), organization_id=self.organization_id, name=name, npi=npi
        )
        return ClientRecord.model_validate(await self._add(row))

    async def add_claim_submission(
        self,
        *,
        client_id: uuid.UUID | None = None,
        patient_name: str | None = None,
        patient_id: str | None = None,
        id: uuid.UUID | None = None,
    ) -> ClaimSubmissionRecord:
        """A new claim submission in this organization."""
        row = m.ClaimSubmission(
            id=id or uuid.uuid4(),
            organization_id=self.organization_id,
            client_id=client_id,
            patient_name=patient_name,
            patient_id=patient_id,
        )
        return ClaimSubmissionRecord.model_validate(await self._add(row))

    async def add_credential(
        self, name: str, *, portal: str | None = None, id: uuid.UUID | None = None
    ) -> CredentialRecord:
        """A new payer-portal credential in this organization."""
        row = m.Credential(
            id=id or uuid.uuid4(), organization_id=self.organization_id, name=name, portal=portal
        )
        return CredentialRecord.model_validate(await self._add(row))


class JobRepository(ScopedRepository[m.Job]):
    """Create, read and delete jobs of one organization."""

    model_type = m.Job

    async def create(
        self,
        *,
        workflow_id: uuid.UUID,
        client_id: uuid.UUID | None = None,
        claim_submission_id: uuid.UUID | None = None,
        credential_ids: list[uuid.UUID] | None = None,
        status: str = "pending",
        created_at: dt.datetime | None = None,
        id: uuid.UUID | None = None,
    ) -> JobRecord:
        """A new job in this organization."""
        row = m.Job(
            id=id or uuid.uuid4(),
            organization_id=self.organization_id,
            workflow_id=workflow_id,
            client_id=client_id,
            claim_submission_id=claim_submission_id,
            credential_ids=list(credential_ids or []),
            status=status,
            created_at=created_at or dt.datetime.now(dt.UTC),
        )
        return JobRecord.model_validate(await self._add(row))

    async def get(self, job_id: uuid.UUID) -> JobRecord:
        """The job, or NotFound (also for another organization's job)."""
        return JobRecord.model_validate(await self._get_row(job_id))

    async def set_status(
        self, job_id: uuid.UUID, status: str, *, error_message: str | None = None
    ) -> None:
        """Record a status change (the error message is fitted to its column)."""
        row = await self._get_row(job_id)
        row.status = status
        row.error_message = error_message
        with translate_database_errors():
            await self.session.flush()

    async def delete(self, job_id: uuid.UUID) -> list[str]:
        """The result archive keys of the job, which is deleted with its rows (NotFound if none).

        Child rows go with it (ON DELETE CASCADE). Inside a unit of work the archive
        blobs are deleted after the commit (``unit.on_commit``), never before: a rolled
        back delete must still find its blobs. Outside a unit the caller deletes the
        returned keys after committing, or the reconciler removes them as orphans.
        """
        await self._get_row(job_id)
        with translate_database_errors():
            keys = list(
                (
                    await self.session.scalars(
                        sa.select(m.JobResultArchive.blob_key).where(
                            m.JobResultArchive.job_id == job_id
                        )
                    )
                ).all()
            )
            await self.session.execute(
                self._scoped(sa.delete(m.Job).where(m.Job.id == job_id)),
                execution_options={"synchronize_session": False},
            )
        unit = self.session.info.get("execstore.unit")
        if unit is not None:
            archives = unit.store.archives
            for key in keys:
                unit.on_commit(lambda key=key: archives.delete(key))
        return keys

    async def exists(self, job_id: uuid.UUID) -> bool:
        """Whether this organization has the job."""
        with translate_database_errors():
            found = await self.session.scalar(
                self._scoped(sa.select(sa.literal(1)).where(m.Job.id == job_id))
            )
        return found is not None
