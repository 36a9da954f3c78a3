"""The database itself refuses a row that names another organization's reference row.

Every column that names an organization's reference row (a workflow, client, claim
submission or account) is backed by a composite foreign key ``(organization_id, column)``.
Each is tried with SQL that bypasses the repositories: naming organization A's row from
organization B's row is refused, naming B's own row of the same kind is accepted, on
both backends.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.schema import models as m
from execstore.schema.enums import ExecutionStatus

from .test_tenancy import _org_with_refs

CASES = [
    ("jobs", "workflow_id"),
    ("jobs", "client_id"),
    ("jobs", "claim"),
    ("claim_submissions", "client_id"),
    ("execution_metadata", "workflow_id"),
    ("execution_metadata", "client_id"),
    ("execution_metadata", "claim"),
    ("execution_metadata", "cred"),
]


async def _insert(
    store: Any, table: str, org: uuid.UUID, own: dict[str, uuid.UUID], refs: dict[str, uuid.UUID]
) -> None:
    """One row of ``table`` for ``org`` naming ``refs``, by plain SQL (its job names ``own``)."""
    job = uuid.uuid4()
    job_refs = refs if table == "jobs" else own
    async with store.sessions() as session, session.begin():
        if table == "claim_submissions":
            await session.execute(
                sa.insert(m.ClaimSubmission.__table__).values(
                    id=uuid.uuid4(), organization_id=org, client_id=refs["client_id"]
                )
            )
            return
        await session.execute(
            sa.insert(m.Job.__table__).values(
                id=job,
                organization_id=org,
                workflow_id=job_refs["workflow_id"],
                client_id=job_refs["client_id"],
                claim_submission_id=job_refs["claim"],
                credential_ids=[],
            )
        )
        if table == "execution_metadata":
            await session.execute(
                sa.insert(m.ExecutionMetadata.__table__).values(
                    job_id=job,
                    organization_id=org,
                    workflow_id=refs["workflow_id"],
                    client_id=refs["client_id"],
                    claim_submission_id=refs["claim"],
                    primary_account_id=refs["cred"],
                    status=ExecutionStatus.PENDING,
                    created_at=dt.datetime(2031, 1, 1, tzinfo=dt.UTC),
                )
            )


async def test_a_row_naming_another_organizations_reference_is_refused(store: Any) -> None:
    (_, refs_a), (org_b, refs_b) = (
        await _org_with_refs(store, "A"),
        await _org_with_refs(store, "B"),
    )
    for table, ref in CASES:
        with pytest.raises(sa.exc.IntegrityError):
            await _insert(store, table, org_b, refs_b, {**refs_b, ref: refs_a[ref]})
        await _insert(store, table, org_b, refs_b, refs_b)  # B's own row of that kind: fine
