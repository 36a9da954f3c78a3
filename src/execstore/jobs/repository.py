"""Jobs and their reference data: small repositories so execstore stands on its own.

These tables belong to the orchestration service; execstore only needs enough of them
to be used, demonstrated and tested alone, and to join names for dashboards. Every row
they create names only rows of the unit's organization (NotFound otherwise).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.arguments import checks_arguments
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import NotFound, translate_database_errors
from execstore.jobs.types import (
    ClaimSubmissionRecord,
    ClientRecord,
    CredentialRecord,
    JobRecord,
    OrganizationRecord,
    WorkflowRecord,
)
from execstore.repository import ScopedRepository, TransactionHooks
from execstore.schema import models as m

__all__ = ["JobDeletion", "JobRepository", "ReferenceRepository"]

JobDeletion = Callable[[AsyncSession, uuid.UUID, TransactionHooks | None], Awaitable[list[str]]]
"""What a capability does when a job is deleted: given the session, the job id and the
unit's hooks, it returns the blob keys of the job's archives and (with hooks) arranges
their deletion after the commit. Called before the job's rows are deleted."""


@checks_arguments
class ReferenceRepository(ScopedRepository[m.Workflow]):
    """Create and read the organization, its workflows, clients, claims and credentials."""

    model_type = m.Workflow

    async def add_organization(self, name: str) -> OrganizationRecord:
        """Create the unit's own organization (its id is the unit's ``organization_id``)."""
        row = m.Organization(id=self.organization_id, name=name, created_at=self.clock.now())
        return OrganizationRecord.model_validate(await self._add(row))

    async def organization(self) -> OrganizationRecord:
        """The unit's organization, or NotFound if it was never created."""
        with translate_database_errors():
            row = await self.session.get(m.Organization, self.organization_id)
        if row is None:
            raise NotFound(f"organizations {self.organization_id} not found")
        return OrganizationRecord.model_validate(row)

    async def add_workflow(self, name: str, *, id: uuid.UUID | None = None) -> WorkflowRecord:
        """A new workflow in this organization."""
        row = m.Workflow(
            id=id or uuid.uuid4(),
            organization_id=self.organization_id,
            name=name,
            created_at=self.clock.now(),
        )
        return WorkflowRecord.model_validate(await self._add(row))

    async def add_client(
        self, name: str, *, npi: str | None = None, id: uuid.UUID | None = None
    ) -> ClientRecord:
        """A new client in this organization."""
        row = m.Client(
            id=id or uuid.uuid4(),
            organization_id=self.organization_id,
            name=name,
            npi=npi,
            created_at=self.clock.now(),
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
        """A new claim submission in this organization (its client must be this one's)."""
        values = {
            "id": id or uuid.uuid4(),
            "organization_id": self.organization_id,
            "client_id": client_id,
            "patient_name": patient_name,
            "patient_id": patient_id,
            "created_at": self.clock.now(),
        }
        await self._insert_owned(m.ClaimSubmission, values, owned={"client_id": m.Client})
        return ClaimSubmissionRecord.model_validate(values)

    async def add_credential(
        self, name: str, *, portal: str | None = None, id: uuid.UUID | None = None
    ) -> CredentialRecord:
        """A new payer-portal credential in this organization."""
        row = m.Credential(
            id=id or uuid.uuid4(),
            organization_id=self.organization_id,
            name=name,
            portal=portal,
            created_at=self.clock.now(),
        )
        return CredentialRecord.model_validate(await self._add(row))


@checks_arguments
class JobRepository(ScopedRepository[m.Job]):
    """Create, read and delete jobs of one organization."""

    model_type = m.Job

    def __init__(
        self,
        *,
        session: AsyncSession,
        organization_id: uuid.UUID,
        hooks: TransactionHooks | None = None,
        on_delete: Sequence[JobDeletion] = (),
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(session=session, organization_id=organization_id, hooks=hooks, clock=clock)
        self.on_delete = tuple(on_delete)

    async def create(
        self,
        *,
        workflow_id: uuid.UUID,
        client_id: uuid.UUID | None = None,
        claim_submission_id: uuid.UUID | None = None,
        credential_ids: Sequence[uuid.UUID] | None = None,
        status: str = "pending",
        created_at: dt.datetime | None = None,
        id: uuid.UUID | None = None,
    ) -> JobRecord:
        """A new job in this organization.

        The workflow, client, claim submission and every credential must be this
        organization's: otherwise NotFound names the first that is not, and nothing is
        written.
        """
        values: dict[str, Any] = {
            "id": id or uuid.uuid4(),
            "organization_id": self.organization_id,
            "workflow_id": workflow_id,
            "client_id": client_id,
            "claim_submission_id": claim_submission_id,
            "credential_ids": list(credential_ids or []),
            "status": status,
            "created_at": created_at or self.clock.now(),
        }
        await self._insert_owned(
            m.Job,
            values,
            owned={
                "workflow_id": m.Workflow,
                "client_id": m.Client,
                "claim_submission_id": m.ClaimSubmission,
                "credential_ids": m.Credential,
            },
        )
        return await self.get(values["id"])

    async def get(self, job_id: uuid.UUID) -> JobRecord:
        """The job, or NotFound (also for another organization's job)."""
        return JobRecord.model_validate(await self._get_row(job_id))

    async def find(self, job_id: uuid.UUID) -> JobRecord | None:
        """The job, None if there is none (or it is another organization's)."""
        try:
            return await self.get(job_id)
        except NotFound:
            return None

    async def set_status(
        self,
        job_id: uuid.UUID,
        status: str,
        *,
        error_message: str | None = None,
        started_at: dt.datetime | None = None,
        completed_at: dt.datetime | None = None,
    ) -> JobRecord:
        """Record a status change (and, when given, the start or completion time).

        ``jobs.status`` is the orchestration service's free text ("pending", "running",
        "completed", ...); the error message is fitted to its 2,000-character column.
        NotFound for another organization's job.
        """
        values: dict[str, Any] = {"status": status, "error_message": error_message}
        if started_at is not None:
            values["started_at"] = started_at
        if completed_at is not None:
            values["completed_at"] = completed_at
        with translate_database_errors():
            changed = await self.session.execute(
                self._scoped(sa.update(m.Job).where(m.Job.id == job_id))
                .values(**values)
                .returning(m.Job.id),
                execution_options={"synchronize_session": False},
            )
            if changed.first() is None:
                raise NotFound(f"jobs {job_id} not found")
            self.session.expire_all()
        return await self.get(job_id)

    async def delete(self, job_id: uuid.UUID) -> list[str]:
        """The archive keys of the job, which is deleted with its rows (NotFound if none).

        Child rows go with it (ON DELETE CASCADE); every capability that archives per
        job removes its pointer rows and, inside a unit of work, deletes the blobs after
        the commit (``on_commit``), never before: a rolled-back delete must still find
        its blobs. Outside a unit the caller deletes the returned keys after committing,
        or the reconciler removes them as orphans.
        """
        await self._get_row(job_id)
        keys: list[str] = []
        for forget in self.on_delete:
            keys += await forget(self.session, job_id, self.hooks)
        with translate_database_errors():
            await self.session.execute(
                self._scoped(sa.delete(m.Job).where(m.Job.id == job_id)),
                execution_options={"synchronize_session": False},
            )
        return keys

    async def exists(self, job_id: uuid.UUID) -> bool:
        """Whether this organization has the job."""
        with translate_database_errors():
            found = await self.session.scalar(
                self._scoped(sa.select(sa.literal(1)).where(m.Job.id == job_id))
            )
        return found is not None
