"""A workflow processor's view of one job: track it, log it, save its RAG context and result.

Run with ``.venv/bin/python examples/workflow_processor.py`` (the embedded SQLite database
and local blob directory, migrated if needed; ``EXECSTORE_*`` variables point it elsewhere).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from execstore import ExecStore, load_settings
from execstore.migrations.runner import migrate


async def main() -> None:
    """One claim-status job from start to finish, then what was stored."""
    settings = load_settings()
    await migrate(settings.database_url, settings=settings)
    org = uuid.uuid4()
    async with ExecStore.open(settings) as store:
        # The orchestration service: the organization, its workflow and the job.
        async with store.unit(org) as uow:
            await uow.reference.add_organization("Processor Example Clinic")
            workflow = await uow.reference.add_workflow("Claim status check")
            account = await uow.reference.add_credential("Availity", portal="availity")
            job = await uow.jobs.create(workflow_id=workflow.id, credential_ids=[account.id])
            await uow.metadata.create(job.id, total_steps=2)

        # The processor runs it: retrieval first, then the steps, logging as it goes.
        started = dt.datetime.now(dt.UTC)
        async with store.unit(org) as uow:
            await uow.metadata.start(job.id, started_at=started)
            await uow.rag.save(
                job.id,
                {
                    "ragRetrievalTimeMs": 84,
                    "totalRulesRetrieved": 1,
                    "averageRetrievalScore": 0.91,
                    "payers": [{"payerName": "Aetna", "payerId": "60054", "scenario": "status"}],
                    "modifiers": [],
                    "rules": [
                        {
                            "ruleId": "R-00042",
                            "ruleType": "payer",
                            "condition": "Aetna claims older than 30 days",
                            "action": "Check the remittance before calling",
                            "retrievalScore": 0.91,
                        }
                    ],
                },
            )
            await uow.logs.append(
                job.id,
                [
                    {"message": "Logged in to Availity", "step_index": 0, "step_name": "log in"},
                    {
                        "message": "Claim CLM000123 is PAID",
                        "step_index": 1,
                        "step_name": "read claim status",
                        "metadata": {"status": "PAID", "amount": 123.45},
                    },
                ],
            )
            await uow.metadata.progress(job.id, 1, 2)
        async with store.unit(org) as uow:
            await uow.rag.mark_rule_used(job.id, "R-00042", step_index=1, reason="claim is old")
            await uow.metadata.progress(job.id, 2, 2)
            summary = await uow.results.save(
                job.id,
                {
                    "success": True,
                    "stats": {"totalSteps": 2, "successfulSteps": 2, "failedSteps": 0},
                    "stepResults": [
                        {"stepIndex": 0, "name": "log in", "success": True},
                        {"stepIndex": 1, "name": "read claim status", "success": True},
                    ],
                    "screenshots": [
                        {
                            "stepIndex": 1,
                            "url": f"https://acme.blob.core.windows.net/shots/{job.id}/1.png",
                            "width": 1280,
                            "height": 800,
                        }
                    ],
                    "extractedData": {"claimStatus": "PAID", "paidAmount": "123.45"},
                },
            )
            await uow.metadata.complete(job.id)
            await uow.jobs.set_status(job.id, "completed", completed_at=dt.datetime.now(dt.UTC))
            # Every read of PHI is audited, and the record survives even if this unit fails.
            await uow.audit.record(
                {
                    "action": "view",
                    "resource_type": "claim",
                    "resource_id": "CLM000123",
                    "patient_ref": "MRN-0001",
                    "job_id": job.id,
                    "purpose": "payment",
                    "details": {"fields": ["status", "paidAmount"]},
                }
            )

        async with store.unit(org) as uow:
            view = await uow.metadata.get(job.id)
            rag = await uow.rag.get(job.id)
            lines = await uow.logs.tail(job.id, 5)
        print(f"result summary: success={summary.success}, steps={summary.total_steps}")
        print(f"execution: {view.workflow_name} {view.status.name} {view.progress_percent}%")
        print(f"rules used: {[r.rule_id for r in rag.rules if r.was_used]}")
        print(f"log: {[line.message for line in lines]}")


if __name__ == "__main__":
    asyncio.run(main())
