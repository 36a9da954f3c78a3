"""Jobs and reference data: every row a write names must be the unit's organization's."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.errors import IntegrityViolation, NotFound
from execstore.schema import models as m


async def _org_with_refs(store: Any, name: str) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    org = uuid.uuid4()
    async with store.unit(org) as uow:
        await uow.reference.add_organization(name)
        wf = await uow.reference.add_workflow("Eligibility check")
        client = await uow.reference.add_client("Dr. Lee", npi="1234567893")
        claim = await uow.reference.add_claim_submission(client_id=client.id, patient_name="A B")
        cred = await uow.reference.add_credential("Availity")
    return org, {"workflow_id": wf.id, "client_id": client.id, "claim": claim.id, "cred": cred.id}


@pytest.fixture
async def two_orgs(store: Any) -> tuple[Any, Any]:
    return await _org_with_refs(store, "A"), await _org_with_refs(store, "B")


async def _job_count(store: Any, org: uuid.UUID) -> int:
    async with store.sessions() as session:
        return int(
            await session.scalar(
                sa.select(sa.func.count()).select_from(m.Job).where(m.Job.organization_id == org)
            )
            or 0
        )


@pytest.mark.parametrize(
    ("field", "ref"),
    [
        ("workflow_id", "workflow_id"),
        ("client_id", "client_id"),
        ("claim_submission_id", "claim"),
        ("credential_ids", "cred"),
    ],
)
async def test_a_job_cannot_name_another_organizations_row(
    store: Any, two_orgs: Any, field: str, ref: str
) -> None:
    (_, refs_a), (org_b, refs_b) = two_orgs
    kwargs: dict[str, Any] = {"workflow_id": refs_b["workflow_id"]}
    foreign = refs_a[ref]
    kwargs[field] = [foreign] if field == "credential_ids" else foreign
    with pytest.raises(NotFound, match=str(foreign)):
        async with store.unit(org_b) as uow:
            await uow.jobs.create(**kwargs)
    assert await _job_count(store, org_b) == 0
    # The same references of its own organization are accepted.
    own = {"workflow_id": refs_b["workflow_id"]}
    own[field] = [refs_b[ref]] if field == "credential_ids" else refs_b[ref]  # type: ignore[assignment]
    async with store.unit(org_b) as uow:
        job = await uow.jobs.create(**own)
    assert job.organization_id == org_b


async def test_one_foreign_credential_among_own_ones_is_refused(store: Any, two_orgs: Any) -> None:
    (_, refs_a), (org_b, refs_b) = two_orgs
    with pytest.raises(NotFound, match="credentials"):
        async with store.unit(org_b) as uow:
            await uow.jobs.create(
                workflow_id=refs_b["workflow_id"], credential_ids=[refs_b["cred"], refs_a["cred"]]
            )
    assert await _job_count(store, org_b) == 0


async def test_a_claim_cannot_name_another_organizations_client(store: Any, two_orgs: Any) -> None:
    (_, refs_a), (org_b, _) = two_orgs
    with pytest.raises(NotFound, match="clients"):
        async with store.unit(org_b) as uow:
            await uow.reference.add_claim_submission(client_id=refs_a["client_id"])


async def test_the_database_itself_refuses_a_cross_tenant_reference(
    store: Any, two_orgs: Any
) -> None:
    """Even SQL that bypasses the repository cannot point a job at another tenant's workflow."""
    (_, refs_a), (org_b, _) = two_orgs
    with pytest.raises(IntegrityViolation):  # noqa: PT012 - the unit is the statement
        async with store.unit(org_b) as uow:
            uow.session.add(
                m.Job(id=uuid.uuid4(), organization_id=org_b, workflow_id=refs_a["workflow_id"])
            )
            await uow.session.flush()


async def test_another_organizations_job_cannot_be_read_changed_or_deleted(
    store: Any, two_orgs: Any
) -> None:
    (org_a, refs_a), (org_b, _) = two_orgs
    async with store.unit(org_a) as uow:
        job = await uow.jobs.create(workflow_id=refs_a["workflow_id"])
    async with store.unit(org_b) as uow:
        with pytest.raises(NotFound):
            await uow.jobs.get(job.id)
        with pytest.raises(NotFound):
            await uow.jobs.set_status(job.id, "failed", error_message="hijacked")
        with pytest.raises(NotFound):
            await uow.jobs.delete(job.id)
    async with store.unit(org_a) as uow:
        same = await uow.jobs.get(job.id)
    assert same.status == "pending"
    assert same.error_message is None


async def test_set_status_records_times_and_fits_the_message(store: Any, two_orgs: Any) -> None:
    import datetime as dt

    (org_a, refs_a), _ = two_orgs
    done = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    async with store.unit(org_a) as uow:
        job = await uow.jobs.create(workflow_id=refs_a["workflow_id"])
        got = await uow.jobs.set_status(
            job.id, "failed", error_message="x" * 5000, completed_at=done
        )
    assert got.status == "failed"
    assert got.completed_at is not None
    assert got.completed_at.astimezone(dt.UTC) == done
    assert got.error_message is not None
    assert len(got.error_message) == 2000


async def test_a_new_job_has_sql_null_result(store: Any, two_orgs: Any) -> None:
    (org_a, refs_a), _ = two_orgs
    async with store.unit(org_a) as uow:
        job = await uow.jobs.create(workflow_id=refs_a["workflow_id"])
    async with store.sessions() as session:
        found = await session.scalar(
            sa.select(sa.func.count())
            .select_from(m.Job)
            .where(m.Job.id == job.id, m.Job.result.is_(None))
        )
    assert found == 1
