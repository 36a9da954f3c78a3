"""A workflow processor's view: create a job, save its output, read it back.

Run with ``.venv/bin/python examples/quickstart.py`` after ``make demo`` (it uses the same
embedded SQLite database and local blob directory, migrating them if needed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from execstore import load_settings
from execstore.migrations.runner import migrate
from execstore.store import ExecStore


async def main() -> None:
    """Save one job's output and print what a dashboard and an investigator would read."""
    settings = load_settings()
    await migrate(settings.database_url, settings=settings)
    org = uuid.uuid4()
    async with ExecStore.open(settings) as store:
        async with store.unit(org) as uow:
            await uow.reference.add_organization("Quickstart Clinic")
            workflow = await uow.reference.add_workflow("Claim status check")
            job = await uow.jobs.create(workflow_id=workflow.id)
            now = dt.datetime.now(dt.UTC).isoformat()
            await uow.results.save(
                job.id,
                {
                    "success": True,
                    "stepResults": [
                        {"stepIndex": 0, "name": "login", "success": True, "durationMs": 812},
                        {"stepIndex": 1, "name": "find claim", "success": True, "durationMs": 1520},
                    ],
                    "screenshots": [
                        {
                            "stepIndex": 1,
                            "url": f"https://acme.blob.core.windows.net/shots/{job.id}/1.png",
                            "width": 1280,
                            "height": 800,
                            "capturedAt": now,
                        }
                    ],
                    "extractedData": {"claimStatus": "paid", "paidAmount": "182.40"},
                    "durationMs": 2332,
                },
            )
        async with store.unit(org) as uow:
            print("summary:", await uow.results.summary(job.id))
            print("detail: ", (await uow.results.detail(job.id)))
            print("screenshots:", await uow.results.screenshots(job.id))


if __name__ == "__main__":
    asyncio.run(main())
