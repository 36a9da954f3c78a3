"""A legacy (pre-optimization) database with realistic execution metadata rows.

Ids come in every form the orchestration service produced: cuids (Prisma's default),
canonical, upper-case and braced uuids; the fat rows copy names that have changed since
(the workflow was renamed), and a few rows are the kind a backfill must set aside or a
check must flag.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from execstore.config import load_settings
from execstore.db import create_engine
from execstore.ids import legacy_uuid
from execstore.schema import legacy

BASE = dt.datetime(2025, 11, 3, 8, 0)


def cuid(seed: str) -> str:
    """A deterministic cuid-shaped id (25 lowercase alphanumerics starting with c)."""
    digest = hashlib.sha1(seed.encode()).hexdigest()
    return (
        "c"
        + "".join(ch if ch.isdigit() else chr(ord("g") + int(ch, 16) % 20) for ch in digest)[:24]
    )


def upper_uuid() -> str:
    return str(uuid.uuid4()).upper()


def braced_uuid() -> str:
    return "{" + str(uuid.uuid4()) + "}"


@dataclass
class LegacyWorld:
    """The legacy ids the tests refer to (as text, exactly as stored)."""

    org: str
    wf_renamed: str
    wf_plain: str
    client: str
    claim: str
    accounts: list[str]
    jobs: dict[str, str] = field(default_factory=dict)
    """Scenario name -> legacy job id."""
    metadata_ids: dict[str, str] = field(default_factory=dict)
    """Scenario name -> legacy execution_metadata id."""

    def job_uuid(self, scenario: str) -> uuid.UUID:
        return legacy_uuid(self.jobs[scenario])

    @property
    def org_uuid(self) -> uuid.UUID:
        return legacy_uuid(self.org)


def _metadata_row(
    world: LegacyWorld, scenario: str, job_id: str, n: int, **fields: Any
) -> dict[str, Any]:
    created = BASE + dt.timedelta(minutes=7 * n)
    started = created + dt.timedelta(seconds=4)
    row: dict[str, Any] = {
        "id": cuid(f"md-{scenario}-{n}"),
        "job_id": job_id,
        "organization_id": world.org,
        "workflow_id": world.wf_renamed,
        "workflow_name": "Eligibility v1",
        "client_id": world.client,
        "client_name": "Northside Family Medicine",
        "client_npi": "1234567893",
        "claim_submission_id": world.claim,
        "insuree_name": "Grace Hopper",
        "insuree_id": "MBR-1906",
        "status": "completed",
        "progress_percent": 100,
        "total_steps": 12,
        "completed_steps": 12,
        "created_at": created,
        "started_at": started,
        "completed_at": started + dt.timedelta(seconds=80 + n),
        "duration_ms": (80 + n) * 1000,
        "error_code": None,
        "error_message": None,
        "primary_account_id": world.accounts[0],
        "primary_account_name": "availity-main",
        "all_account_ids": world.accounts[:2],
        "all_account_names": ["availity-main", "payer-portal-2"],
        "account_count": 2,
        "updated_at": created + dt.timedelta(minutes=2),
    }
    row.update(fields)
    world.metadata_ids[scenario] = row["id"]
    return row


async def build_legacy_database(url: str, *, ordinary: int = 30) -> LegacyWorld:
    """Fill a database at ``legacy_baseline`` with the scenarios below plus ``ordinary`` rows.

    Scenarios: ``cuid_job`` (cuid job id, ids copied in another case), ``running`` (still
    running: it progresses after the move), ``long_error`` (error text over the new
    limit), ``unknown_status`` (status text the enum does not know), ``orphan`` (its job
    is deleted later), ``stale_accounts`` (account list that is not the job's),
    ``odd_percent`` (progress_percent that disagrees with the steps).
    """
    world = LegacyWorld(
        org=cuid("org"),
        wf_renamed=upper_uuid(),
        wf_plain=cuid("wf-plain"),
        client=braced_uuid(),
        claim=cuid("claim"),
        accounts=[cuid("acct-1"), str(uuid.uuid4()), upper_uuid()],
    )
    jobs: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []

    def job(scenario: str, job_id: str, n: int, *, job_fields: Any = None, **md: Any) -> None:
        world.jobs[scenario] = job_id
        values = {
            "id": job_id,
            "organization_id": world.org,
            "workflow_id": world.wf_renamed,
            "client_id": world.client,
            "claim_submission_id": world.claim,
            "credential_ids": world.accounts[:2],
            "status": "completed",
            "created_at": BASE + dt.timedelta(minutes=7 * n),
        }
        values.update(job_fields or {})
        jobs.append(values)
        meta.append(_metadata_row(world, scenario, job_id, n, **md))

    # Ids copied into the fat row in another spelling than the reference rows use.
    job(
        "cuid_job",
        cuid("job-1"),
        1,
        workflow_id=world.wf_renamed.lower(),
        client_id=world.client.strip("{}").upper(),
    )
    job(
        "running",
        upper_uuid(),
        2,
        job_fields={
            "workflow_id": world.wf_plain,
            "client_id": None,
            "claim_submission_id": None,
            "credential_ids": [world.accounts[2]],
            "status": "running",
        },
        workflow_id=world.wf_plain,
        workflow_name="Claim status",
        client_id=None,
        client_name=None,
        client_npi=None,
        claim_submission_id=None,
        insuree_name=None,
        insuree_id=None,
        status="RUNNING",
        progress_percent=50,
        completed_steps=6,
        completed_at=None,
        duration_ms=None,
        primary_account_id=world.accounts[2],
        primary_account_name="legacy-portal",
        all_account_ids=[world.accounts[2]],
        all_account_names=["legacy-portal"],
        account_count=1,
    )
    job(
        "long_error",
        braced_uuid(),
        3,
        status="failed",
        progress_percent=25,
        completed_steps=3,
        error_code="E_PORTAL_UNAVAILABLE",
        error_message="payer portal returned 503: " + "upstream maintenance window; " * 40,
    )
    job("unknown_status", str(uuid.uuid4()), 4, status="paused-by-ops")
    job("orphan", str(uuid.uuid4()), 5)
    job(
        "stale_accounts",
        cuid("job-6"),
        6,
        all_account_ids=[world.accounts[0]],
        all_account_names=["availity-main"],
        account_count=1,
    )
    job(
        "odd_percent",
        str(uuid.uuid4()),
        7,
        status="Failed",
        progress_percent=40,
        completed_steps=3,
        error_code="E_LOGIN",
        error_message="bad password",
    )
    for i in range(ordinary):
        form = (cuid(f"ordinary-{i}"), upper_uuid(), braced_uuid(), str(uuid.uuid4()))[i % 4]
        job(
            f"ordinary_{i}",
            form,
            10 + i,
            status=("completed", "Completed", "timeout", "canceled")[i % 4],
            completed_steps=12 if i % 4 < 2 else 5,
            progress_percent=100 if i % 4 < 2 else round(500 / 12, 2),
        )

    engine = create_engine(load_settings(database_url=url), foreign_keys=False)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(legacy.organizations), [{"id": world.org, "name": "Acme Billing"}]
            )
            await conn.execute(
                sa.insert(legacy.workflows),
                [
                    # Renamed after the fat rows copied "Eligibility v1".
                    {
                        "id": world.wf_renamed,
                        "organization_id": world.org,
                        "name": "Eligibility v2",
                    },
                    {"id": world.wf_plain, "organization_id": world.org, "name": "Claim status"},
                ],
            )
            await conn.execute(
                sa.insert(legacy.clients),
                [
                    {
                        "id": world.client,
                        "organization_id": world.org,
                        "name": "Northside Family Medicine",
                        "npi": "1234567893",
                    }
                ],
            )
            await conn.execute(
                sa.insert(legacy.claim_submissions),
                [
                    {
                        "id": world.claim,
                        "organization_id": world.org,
                        "client_id": world.client,
                        "patient_name": "Grace Hopper",
                        "patient_id": "MBR-1906",
                    }
                ],
            )
            await conn.execute(
                sa.insert(legacy.credentials),
                [
                    {
                        "id": world.accounts[0],
                        "organization_id": world.org,
                        "name": "availity-main",
                    },
                    {
                        "id": world.accounts[1],
                        "organization_id": world.org,
                        "name": "payer-portal-2",
                    },
                    {
                        "id": world.accounts[2],
                        "organization_id": world.org,
                        "name": "legacy-portal",
                    },
                ],
            )
            await conn.execute(sa.insert(legacy.jobs), jobs)
            await conn.execute(sa.insert(legacy.execution_metadata), meta)
    finally:
        await engine.dispose()
    return world
