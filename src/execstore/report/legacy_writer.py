"""Write synthetic jobs the way the pre-optimization service did: the legacy schema.

Text ids, the full output in ``jobs.result``, a denormalized metadata row with names and
account arrays (updated through the same lifecycle as the optimized row), the RAG context
as JSON arrays, one text-keyed row per log line, screenshot rows with whole URLs, and PHI
audit records with JSON details. This is the "before" of the storage report.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from execstore.report.synthetic import SyntheticJob, SyntheticOrganization
from execstore.schema import legacy

__all__ = ["write_legacy_jobs", "write_legacy_organizations"]


def _naive(when: dt.datetime) -> dt.datetime:
    # The legacy columns are timestamp(3) without time zone, holding UTC.
    return when.astimezone(dt.UTC).replace(tzinfo=None)


async def write_legacy_organizations(
    conn: AsyncConnection, organizations: Sequence[SyntheticOrganization]
) -> None:
    """The organizations and their reference rows."""
    for org in organizations:
        oid = str(org.id)
        await conn.execute(sa.insert(legacy.organizations), [{"id": oid, "name": org.name}])
        await conn.execute(
            sa.insert(legacy.workflows),
            [{"id": str(w), "organization_id": oid, "name": n} for w, n in org.workflows],
        )
        await conn.execute(
            sa.insert(legacy.clients),
            [
                {"id": str(c), "organization_id": oid, "name": n, "npi": p}
                for c, n, p in org.clients
            ],
        )
        await conn.execute(
            sa.insert(legacy.credentials),
            [
                {"id": str(c), "organization_id": oid, "name": n, "portal": p}
                for c, n, p in org.credentials
            ],
        )


async def write_legacy_jobs(
    engine: AsyncEngine,
    jobs: Sequence[SyntheticJob],
    *,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Each job's rows in the legacy tables, metadata updated through its lifecycle.

    Every lifecycle step commits on its own, as the service's updates did; ``settle`` runs
    after each step (the simulation vacuums there, standing in for the autovacuum that
    keeps up with updates spread over a month).
    """
    async with engine.begin() as conn:
        await _insert_all(conn, jobs)
    await _metadata_lifecycle(engine, jobs, settle)


async def _insert_all(conn: AsyncConnection, jobs: Sequence[SyntheticJob]) -> None:
    await conn.execute(
        sa.insert(legacy.claim_submissions),
        [
            {
                "id": str(job.claim_id),
                "organization_id": str(job.organization.id),
                "client_id": str(job.client[0]),
                "patient_name": job.patient_name,
                "patient_id": job.patient_id,
            }
            for job in jobs
        ],
    )
    await conn.execute(sa.insert(legacy.jobs), [_job_row(job) for job in jobs])
    await conn.execute(sa.insert(legacy.execution_metadata), [_metadata_row(job) for job in jobs])
    await conn.execute(sa.insert(legacy.execution_rag_rules), [_rag_row(job) for job in jobs])
    await conn.execute(
        sa.insert(legacy.execution_log), [row for job in jobs for row in _log_rows(job)]
    )
    shots = [row for job in jobs for row in _screenshot_rows(job)]
    if shots:
        await conn.execute(sa.insert(legacy.execution_screenshots), shots)
    await conn.execute(
        sa.insert(legacy.phi_audit_log), [row for job in jobs for row in _audit_rows(job)]
    )


def _job_row(job: SyntheticJob) -> dict[str, Any]:
    return {
        "id": str(job.id),
        "organization_id": str(job.organization.id),
        "workflow_id": str(job.workflow[0]),
        "client_id": str(job.client[0]),
        "claim_submission_id": str(job.claim_id),
        "credential_ids": [str(c[0]) for c in job.credentials],
        "status": "completed" if job.succeeded else "failed",
        "error_message": job.error_message,
        "result": job.output,
        "created_at": _naive(job.created_at),
        "started_at": _naive(job.started_at),
        "completed_at": _naive(job.completed_at),
    }


def _metadata_row(job: SyntheticJob) -> dict[str, Any]:
    primary = job.credentials[0]
    return {
        "id": str(uuid.uuid5(job.id, "metadata")),
        "job_id": str(job.id),
        "organization_id": str(job.organization.id),
        "workflow_id": str(job.workflow[0]),
        "workflow_name": job.workflow[1],
        "client_id": str(job.client[0]),
        "client_name": job.client[1],
        "client_npi": job.client[2],
        "claim_submission_id": str(job.claim_id),
        "insuree_name": job.patient_name,
        "insuree_id": job.patient_id,
        "status": "pending",
        "progress_percent": Decimal(0),
        "total_steps": job.total_steps,
        "completed_steps": 0,
        "created_at": _naive(job.created_at),
        "primary_account_id": str(primary[0]),
        "primary_account_name": primary[1],
        "all_account_ids": [str(c[0]) for c in job.credentials],
        "all_account_names": [c[1] for c in job.credentials],
        "account_count": len(job.credentials),
        "updated_at": _naive(job.created_at),
    }


async def _metadata_lifecycle(
    engine: AsyncEngine,
    jobs: Sequence[SyntheticJob],
    settle: Callable[[], Awaitable[None]] | None,
) -> None:
    table = legacy.execution_metadata
    key: sa.BindParameter[str] = sa.bindparam("key")
    rounds: list[tuple[Any, list[dict[str, Any]]]] = [
        (
            sa.update(table)
            .where(table.c.job_id == key)
            .values(status="running", started_at=sa.bindparam("at"), updated_at=sa.bindparam("at")),
            [{"key": str(job.id), "at": _naive(job.started_at)} for job in jobs],
        )
    ]
    progress = (
        sa.update(table)
        .where(table.c.job_id == key)
        .values(
            completed_steps=sa.bindparam("done"),
            progress_percent=sa.bindparam("pct"),
            updated_at=sa.bindparam("at"),
        )
    )
    for step in range(12):
        rounds.append(
            (
                progress,
                [
                    {
                        "key": str(job.id),
                        "done": job.progress[step],
                        "pct": Decimal(100 * job.progress[step] / job.total_steps).quantize(
                            Decimal("0.01")
                        ),
                        "at": _naive(job.started_at),
                    }
                    for job in jobs
                ],
            )
        )
    rounds.append(
        (
            sa.update(table)
            .where(table.c.job_id == key)
            .values(
                status=sa.bindparam("status"),
                completed_at=sa.bindparam("at"),
                duration_ms=sa.bindparam("ms"),
                error_code=sa.bindparam("code"),
                error_message=sa.bindparam("message"),
                updated_at=sa.bindparam("at"),
            ),
            [
                {
                    "key": str(job.id),
                    "status": "completed" if job.succeeded else "failed",
                    "at": _naive(job.completed_at),
                    "ms": job.duration_ms,
                    "code": job.error_code,
                    "message": job.error_message,
                }
                for job in jobs
            ],
        )
    )
    for statement, params in rounds:
        async with engine.begin() as conn:
            await conn.execute(statement, params)
        if settle is not None:
            await settle()


def _rag_row(job: SyntheticJob) -> dict[str, Any]:
    rag = job.rag
    return {
        "id": str(uuid.uuid5(job.id, "rag")),
        "job_id": str(job.id),
        "organization_id": str(job.organization.id),
        "payers": rag["payers"],
        "modifiers": rag["modifiers"],
        "rules": rag["rules"],
        "rag_retrieval_time_ms": rag["ragRetrievalTimeMs"],
        "total_rules_retrieved": rag["totalRulesRetrieved"],
        "total_rules_used": rag["totalRulesUsed"],
        "average_retrieval_score": Decimal(str(rag["averageRetrievalScore"])),
        "retrieved_at": _naive(dt.datetime.fromisoformat(rag["retrievedAt"])),
    }


def _log_rows(job: SyntheticJob) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid5(job.id, f"log-{n}")),
            "job_id": str(job.id),
            "step_index": line["stepIndex"],
            "step_name": line["stepName"],
            "level": line["level"].lower(),
            "message": line["message"],
            "metadata": line["metadata"],
            "timestamp": _naive(line["timestamp"]),
            "duration": line["durationMs"],
        }
        for n, line in enumerate(job.logs)
    ]


def _screenshot_rows(job: SyntheticJob) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid5(job.id, f"shot-{n}")),
            "job_id": str(job.id),
            "step_index": shot["stepIndex"],
            "url": shot["url"],
            "width": shot["width"],
            "height": shot["height"],
            "captured_at": _naive(dt.datetime.fromisoformat(shot["capturedAt"])),
        }
        for n, shot in enumerate(job.output["screenshots"])
    ]


def _audit_rows(job: SyntheticJob) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid5(job.id, f"audit-{n}")),
            "organization_id": str(job.organization.id),
            "user_id": str(record["actor_id"]),
            "job_id": str(job.id),
            "action": record["action"],
            "resource_type": record["resource_type"],
            "resource_id": record["resource_id"],
            "details": {
                **record["details"],
                "patientRef": record["patient_ref"],
                "purpose": record["purpose"],
            },
            "ip_address": record["source_ip"],
            "user_agent": record["user_agent"],
            "created_at": _naive(record["at"]),
        }
        for n, record in enumerate(job.audit)
    ]
