"""Write synthetic organizations and jobs through execstore's own API.

What a platform does over a job's life, call by call: the orchestration service creates
the claim and the job; the dashboard row is tracked (created, started, a dozen progress
reports, completed or failed); the workflow processor saves its RAG context, appends its
log lines, marks the rules it used and saves its result; every PHI access is audited.
Used by ``storage-report --simulate`` and by ``execstore demo``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from execstore.report.synthetic import SyntheticJob, SyntheticOrganization

__all__ = ["write_jobs", "write_organizations"]


async def write_organizations(store: Any, organizations: Sequence[SyntheticOrganization]) -> None:
    """Each organization with its workflows, clients and credentials."""
    for org in organizations:
        async with store.unit(org.id) as uow:
            await uow.reference.add_organization(org.name)
            for workflow_id, name in org.workflows:
                await uow.reference.add_workflow(name, id=workflow_id)
            for client_id, name, npi in org.clients:
                await uow.reference.add_client(name, npi=npi, id=client_id)
            for credential_id, name, portal in org.credentials:
                await uow.reference.add_credential(name, portal=portal, id=credential_id)


async def write_jobs(
    store: Any,
    jobs: Sequence[SyntheticJob],
    *,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Every job's whole life through the API, one unit of work per call site.

    The metadata lifecycle runs one round at a time across the jobs, each call its own
    transaction; ``settle`` runs between rounds (the simulation vacuums there, standing in
    for the autovacuum that keeps up with updates spread over a month).
    """
    for job in jobs:
        async with store.unit(job.organization.id) as uow:
            await uow.reference.add_claim_submission(
                client_id=job.client[0],
                patient_name=job.patient_name,
                patient_id=job.patient_id,
                id=job.claim_id,
            )
            await uow.jobs.create(
                id=job.id,
                workflow_id=job.workflow[0],
                client_id=job.client[0],
                claim_submission_id=job.claim_id,
                credential_ids=[c[0] for c in job.credentials],
                created_at=job.created_at,
            )
            await uow.metadata.create(job.id, total_steps=job.total_steps)
            await uow.rag.save(job.id, _as_retrieved(job.rag))
            await uow.logs.append(job.id, [_log_entry(line) for line in job.logs])
    await _lifecycle(store, jobs, settle)
    for job in jobs:
        async with store.unit(job.organization.id) as uow:
            for rule in job.rag["rules"]:
                if rule["wasUsed"]:
                    await uow.rag.mark_rule_used(
                        job.id,
                        rule["ruleId"],
                        step_index=rule["usedAtStepIndex"],
                        reason=rule["usageReason"],
                        at=dt.datetime.fromisoformat(rule["usedAtTimestamp"]),
                    )
            await uow.results.save(job.id, job.output)
            await uow.jobs.set_status(
                job.id,
                "completed" if job.succeeded else "failed",
                error_message=job.error_message,
                started_at=job.started_at,
                completed_at=job.completed_at,
            )
            await uow.audit.record_many([_access(record) for record in job.audit])


async def _lifecycle(
    store: Any, jobs: Sequence[SyntheticJob], settle: Callable[[], Awaitable[None]] | None
) -> None:
    async def each(step: Callable[[Any, SyntheticJob], Awaitable[None]]) -> None:
        for job in jobs:
            async with store.unit(job.organization.id) as uow:
                await step(uow, job)
        if settle is not None:
            await settle()

    await each(lambda uow, job: uow.metadata.start(job.id, started_at=job.started_at))
    for n in range(12):

        async def report(uow: Any, job: SyntheticJob, n: int = n) -> None:
            await uow.metadata.progress(job.id, job.progress[n], job.total_steps)

        await each(report)

    async def finish(uow: Any, job: SyntheticJob) -> None:
        if job.succeeded:
            await uow.metadata.complete(job.id, completed_at=job.completed_at)
        else:
            await uow.metadata.fail(
                job.id, job.error_code, job.error_message, completed_at=job.completed_at
            )

    await each(finish)


def _as_retrieved(rag: dict[str, Any]) -> dict[str, Any]:
    """The context as retrieved at the start of the run: no rule used yet."""
    unused = {"wasUsed": False, "usedAtStepIndex": None, "usedAtTimestamp": None}
    return {
        **rag,
        "totalRulesUsed": 0,
        "rules": [{**rule, **unused, "usageReason": None} for rule in rag["rules"]],
    }


def _log_entry(line: dict[str, Any]) -> dict[str, Any]:
    return {
        "timestamp": line["timestamp"],
        "step_index": line["stepIndex"],
        "step_name": line["stepName"],
        "level": line["level"],
        "message": line["message"],
        "metadata": line["metadata"],
        "duration_ms": line["durationMs"],
    }


def _access(record: dict[str, Any]) -> dict[str, Any]:
    # The time of an access is the time it is recorded; the synthetic time is for legacy rows.
    return {key: value for key, value in record.items() if key != "at"}
