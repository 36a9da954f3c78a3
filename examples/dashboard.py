"""A dashboard's view: pages of executions with names, one execution, a 30-day summary.

Run with ``.venv/bin/python examples/dashboard.py`` (the embedded SQLite database and
local blob directory, migrated if needed; ``EXECSTORE_*`` variables point it elsewhere).
It first creates a small organization with a few dozen executions to show.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from execstore import ExecStore, load_settings
from execstore.metadata import ExecutionStatus
from execstore.migrations.runner import migrate


async def seed(store: ExecStore, org: uuid.UUID) -> None:
    """Thirty executions over the last week, a few of them failed."""
    now = dt.datetime.now(dt.UTC)
    async with store.unit(org) as uow:
        await uow.reference.add_organization("Dashboard Example Billing")
        workflows = [
            await uow.reference.add_workflow(name)
            for name in ("Claim status check", "Eligibility check")
        ]
        client = await uow.reference.add_client("Dr. Lee Family Practice", npi="1234567893")
        account = await uow.reference.add_credential("UHC portal", portal="uhc")
        for n in range(30):
            claim = await uow.reference.add_claim_submission(
                client_id=client.id, patient_name=f"Patient {n}", patient_id=f"M{n:05d}"
            )
            created = now - dt.timedelta(hours=5 * n)
            job = await uow.jobs.create(
                workflow_id=workflows[n % 2].id,
                client_id=client.id,
                claim_submission_id=claim.id,
                credential_ids=[account.id],
                created_at=created,
            )
            await uow.metadata.create(job.id, total_steps=4)
            await uow.metadata.start(job.id, started_at=created + dt.timedelta(seconds=5))
            await uow.metadata.progress(job.id, 4 if n % 7 else 2, 4)
            done = created + dt.timedelta(seconds=40 + n)
            if n % 7:
                await uow.metadata.complete(job.id, completed_at=done)
            else:
                await uow.metadata.fail(
                    job.id, "PORTAL_TIMEOUT", "The portal did not answer", completed_at=done
                )


async def main() -> None:
    """Two pages of the listing, the failed runs, one execution and the summary."""
    settings = load_settings()
    await migrate(settings.database_url, settings=settings)
    org = uuid.uuid4()
    async with ExecStore.open(settings) as store:
        await seed(store, org)
        async with store.unit(org) as uow:
            first = await uow.metadata.list(limit=10)
            second = await uow.metadata.list(limit=10, cursor=first.next_cursor)
            failed = await uow.metadata.list(statuses={ExecutionStatus.FAILED}, limit=50)
            one = await uow.metadata.get(first.items[0].job_id)
            # Dashboards read the rollup `execstore maintain` refreshes; `live` asks the
            # executions themselves (what SQLite always does), for figures up to this second.
            summary = await uow.metadata.summary(days=30, live=True)
        for item in first.items[:3]:
            print(
                f"{item.created_at:%m-%d %H:%M} {item.workflow_name:<20} {item.insuree_name:<11}"
                f" {item.primary_account_name} {item.status.name.lower()}"
            )
        print(f"pages: {len(first.items)} + {len(second.items)} executions, newest first")
        print(f"failed: {[(f.error_code, f.insuree_id) for f in failed.items]}")
        print(f"one: {one.client_name} (NPI {one.client_npi}), accounts {one.all_account_names}")
        print(
            f"summary: {summary.totals.completed} completed, {summary.totals.failed} failed "
            f"over {len(summary.days)} workflow-days (as of {summary.refreshed_at:%H:%M})"
        )


if __name__ == "__main__":
    asyncio.run(main())
