"""Helpers for the metadata tests: an organization with its reference data and jobs."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.config import load_settings
from execstore.migrations.runner import migrate
from execstore.schema import models as m
from execstore.store import ExecStore

from .legacy_data import build_legacy_database

T0 = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


@dataclass
class World:
    """One organization's reference rows, as the tests name them."""

    org: uuid.UUID
    workflow: uuid.UUID
    other_workflow: uuid.UUID
    client: uuid.UUID
    claim: uuid.UUID
    accounts: list[uuid.UUID] = field(default_factory=list)


async def make_world(store: Any, org: uuid.UUID | None = None) -> World:
    """A committed organization with two workflows, a client, a claim and three accounts."""
    org = org or uuid.uuid4()
    async with store.unit(org) as uow:
        await uow.reference.add_organization(f"org {org.hex[:6]}")
        wf = await uow.reference.add_workflow("Eligibility check")
        wf2 = await uow.reference.add_workflow("Claim status")
        client = await uow.reference.add_client("Northside Family Medicine", npi="1234567893")
        claim = await uow.reference.add_claim_submission(
            client_id=client.id, patient_name="Ada Lovelace", patient_id="MBR-0042"
        )
        accounts = [
            (await uow.reference.add_credential(f"portal-{name}", portal="availity")).id
            for name in ("alpha", "beta", "gamma")
        ]
    return World(org, wf.id, wf2.id, client.id, claim.id, accounts)


async def new_job(
    store: Any,
    world: World,
    *,
    created_at: dt.datetime | None = None,
    workflow: uuid.UUID | None = None,
    accounts: list[uuid.UUID] | None = None,
    with_claim: bool = True,
    track: bool = True,
) -> uuid.UUID:
    """A committed job of ``world`` (tracked in execution_metadata unless ``track`` is False)."""
    async with store.unit(world.org) as uow:
        job = await uow.jobs.create(
            workflow_id=workflow or world.workflow,
            client_id=world.client if with_claim else None,
            claim_submission_id=world.claim if with_claim else None,
            credential_ids=world.accounts[1:] if accounts is None else accounts,
            created_at=created_at or T0,
        )
        if track:
            await uow.metadata.create(job.id, total_steps=12)
    return job.id


@pytest.fixture
async def world(store: Any) -> World:
    return await make_world(store)


LAST_EXPAND = "compact_phi_audit"
"""The last revision before the contract steps: the legacy table is still there."""


@pytest.fixture
async def legacy_store(fresh_db_url: str, tmp_path: Path) -> Any:
    """A legacy database upgraded to LAST_EXPAND, opened; yields (store, world, url)."""
    await migrate(fresh_db_url, "legacy_baseline")
    world = await build_legacy_database(fresh_db_url)
    await migrate(fresh_db_url, LAST_EXPAND)
    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path / 'blobs'}")
    async with ExecStore.open(settings) as store:
        # Deleted after the upgrade detached the fat rows from jobs: an orphaned fat row.
        async with store.sessions() as session, session.begin():
            await session.execute(sa.delete(m.Job).where(m.Job.id == world.job_uuid("orphan")))
        yield store, world, fresh_db_url
