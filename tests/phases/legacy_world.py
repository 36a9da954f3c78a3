"""One small legacy database with rows in every legacy table, and what it must become.

The orchestration service's database before execstore (revision ``legacy_baseline``):
one organization, a workflow and a credential, four jobs whose ids come in every form
(cuid, upper-case, braced and canonical uuid), each with a legacy result (but one), a
fat metadata row, a RAG row (but one), log lines in September 2026 and PHI audit rows
from June to December 2026. Upgraded to the last expand revision it is what every
backfill and every contract step starts from. :class:`Expected` is what the reads must
return once everything has moved: every line, record and context exactly once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from execstore.clock import ManualClock
from execstore.config import load_settings
from execstore.db import create_engine
from execstore.ids import legacy_uuid
from execstore.rag.format import context_from_legacy
from execstore.rag.types import RagContext
from execstore.schema import legacy

__all__ = [
    "LAST_EXPAND",
    "NOW",
    "ORG",
    "Expected",
    "build_legacy_world",
    "clock",
    "expected",
    "legacy_log_rows",
]

LAST_EXPAND: Final = "compact_phi_audit"
NOW: Final = dt.datetime(2026, 12, 15, 12, 0, tzinfo=dt.UTC)
"""The operators' clock: September's log lines and the older audit rows are past their
hot windows, nothing is past retention."""
ORG: Final = "ckphaseorg00000000000000a"
WORKFLOW: Final = "ckphasewf000000000000000b"
CREDENTIAL: Final = str(uuid.UUID("6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f")).upper()
JOBS: Final = {
    "cuid": "ckphasejob00000000000000c",
    "upper": "9B2F4C1A-7D3E-4F5A-8B6C-1D2E3F4A5B6C",
    "braced": "{3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f}",
    "plain": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
}
CREATED = dt.datetime(2026, 9, 10, 8, 0)  # naive UTC, like Prisma's timestamp(3)
LINES_PER_JOB: Final = 4
AUDIT_DATES: Final = [
    dt.datetime(2026, 6, 3, 9, 0),
    dt.datetime(2026, 7, 14, 10, 30),
    dt.datetime(2026, 8, 2, 11, 15),
    dt.datetime(2026, 9, 21, 16, 45),
    dt.datetime(2026, 12, 1, 8, 5),
    dt.datetime(2026, 12, 10, 13, 20),
]
"""Four past the 90-day hot window at NOW, two inside it."""


def clock() -> ManualClock:
    """A fresh clock standing at NOW."""
    return ManualClock(NOW)


def _result(kind: str) -> dict[str, Any]:
    return {
        "success": True,
        "stats": {"totalSteps": 2, "successfulSteps": 2, "failedSteps": 0, "duration": 1500},
        "stepResults": [{"stepIndex": i, "success": True, "durationMs": 700 + i} for i in (0, 1)],
        "screenshots": [{"stepIndex": 1, "url": f"https://shots.example/{kind}/1.png"}],
        "extractedData": {"claimStatus": "paid", "job": kind},
    }


def _rag(kind: str) -> dict[str, Any]:
    return {
        "payers": [{"payerName": "Aetna", "payerId": "60054", "scenario": kind}],
        "modifiers": [{"code": "25", "scenario": "E/M with a procedure"}],
        "rules": [
            {
                "ruleId": f"{kind}-R{i}",
                "ruleType": "billing",
                "condition": f"condition {i} of {kind}",
                "action": f"action {i}",
                "retrievalScore": 0.9 - i / 10,
            }
            for i in range(3)
        ],
        "rag_retrieval_time_ms": 120,
        "total_rules_retrieved": 3,
        "total_rules_used": 0,
        "average_retrieval_score": 0.8,
        "retrieved_at": CREATED + dt.timedelta(minutes=1),
    }


def legacy_log_rows() -> list[dict[str, Any]]:
    """The legacy execution_log rows: LINES_PER_JOB a job, in September 2026."""
    return [
        {
            "id": f"cklog{n:02d}{kind}{i}",
            "job_id": job,
            "step_index": i % 2,
            "step_name": f"Step {i % 2}",
            "level": "warn" if i == 3 else "info",
            "message": f"{kind} line {i}",
            "metadata": {"i": i} if i % 2 else None,
            "timestamp": dt.datetime(2026, 9, 20, 8, n, i),
            "duration": 10 * i or None,
        }
        for n, (kind, job) in enumerate(JOBS.items())
        for i in range(LINES_PER_JOB)
    ]


def _audit_rows() -> list[dict[str, Any]]:
    kinds = list(JOBS)
    return [
        {
            "id": f"ckaudit{i:018d}",
            "organization_id": ORG,
            "user_id": f"ckuser{i % 2:019d}",
            "job_id": JOBS[kinds[i % 4]],
            "action": "VIEW_CLAIM",
            "resource_type": "ClaimSubmission",
            "resource_id": f"clm-{i}",
            "details": {"patientId": f"PAT-{i}", "fields": ["dob"]},
            "ip_address": "10.0.0.7",
            "user_agent": "LegacyPortal/2.1",
            "created_at": at,
        }
        for i, at in enumerate(AUDIT_DATES)
    ]


def _metadata(kind: str, job: str, n: int) -> dict[str, Any]:
    created = CREATED + dt.timedelta(minutes=n)
    started = created + dt.timedelta(seconds=5)
    return {
        "id": f"ckmeta{n:019d}",
        "job_id": job,
        "organization_id": ORG,
        "workflow_id": WORKFLOW,
        "workflow_name": "Claim status check",
        "status": "completed",
        "progress_percent": 100,
        "total_steps": 2,
        "completed_steps": 2,
        "created_at": created,
        "started_at": started,
        "completed_at": started + dt.timedelta(seconds=30),
        "duration_ms": 30_000,
        "primary_account_id": CREDENTIAL,
        "primary_account_name": "availity-main",
        "all_account_ids": [CREDENTIAL],
        "all_account_names": ["availity-main"],
        "account_count": 1,
        "updated_at": created + dt.timedelta(minutes=1),
    }


async def build_legacy_world(url: str) -> None:
    """Fill a database at ``legacy_baseline`` with the rows described in the module doc."""
    engine = create_engine(load_settings(database_url=url), foreign_keys=False)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.insert(legacy.organizations).values(id=ORG, name="Acme"))
            await conn.execute(
                sa.insert(legacy.workflows).values(
                    id=WORKFLOW, organization_id=ORG, name="Claim status check"
                )
            )
            await conn.execute(
                sa.insert(legacy.credentials).values(
                    id=CREDENTIAL, organization_id=ORG, name="availity-main"
                )
            )
            await conn.execute(
                sa.insert(legacy.jobs),
                [
                    {
                        "id": job,
                        "organization_id": ORG,
                        "workflow_id": WORKFLOW,
                        "credential_ids": [CREDENTIAL],
                        "status": "completed",
                        "result": None if kind == "plain" else _result(kind),
                        "created_at": CREATED + dt.timedelta(minutes=n),
                    }
                    for n, (kind, job) in enumerate(JOBS.items())
                ],
            )
            await conn.execute(
                sa.insert(legacy.execution_screenshots).values(
                    id="ckshot0000000000000000001",
                    job_id=JOBS["cuid"],
                    step_index=1,
                    url="https://shots.example/cuid/1.png",  # the one the JSON lists
                    captured_at=CREATED,
                )
            )
            await conn.execute(
                sa.insert(legacy.execution_metadata),
                [_metadata(kind, job, n) for n, (kind, job) in enumerate(JOBS.items())],
            )
            await conn.execute(
                sa.insert(legacy.execution_rag_rules),
                [
                    {"id": f"ckrag{n:020d}", "job_id": job, "organization_id": ORG, **_rag(kind)}
                    for n, (kind, job) in enumerate(JOBS.items())
                    if kind != "plain"
                ],
            )
            await conn.execute(sa.insert(legacy.execution_log), legacy_log_rows())
            await conn.execute(sa.insert(legacy.phi_audit_log), _audit_rows())
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Expected:
    """What the reads return once every backfill has run."""

    org: uuid.UUID
    jobs: dict[str, uuid.UUID]
    messages: dict[uuid.UUID, list[str]]
    """Each job's log messages, in order."""
    rag: dict[uuid.UUID, RagContext | None]
    results: dict[uuid.UUID, dict[str, Any] | None]
    audit_resources: list[str]
    """Every audit record's resource id, in time order."""


def expected() -> Expected:
    jobs = {kind: legacy_uuid(job) for kind, job in JOBS.items()}
    rag = {}
    for n, (kind, job) in enumerate(JOBS.items()):
        row = {"id": f"ckrag{n:020d}", "job_id": job, "organization_id": ORG, **_rag(kind)}
        rag[jobs[kind]] = None if kind == "plain" else context_from_legacy(row)
    return Expected(
        org=legacy_uuid(ORG),
        jobs=jobs,
        messages={jobs[kind]: [f"{kind} line {i}" for i in range(LINES_PER_JOB)] for kind in JOBS},
        rag=rag,
        results={jobs[kind]: None if kind == "plain" else _result(kind) for kind in JOBS},
        audit_resources=[f"clm-{i}" for i in range(len(AUDIT_DATES))],
    )
