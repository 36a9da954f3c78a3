"""A workflow processor's logs: append lines, archive old ones, read both back as one log.

Run with ``.venv/bin/python examples/logs.py`` (the embedded SQLite database and local
blob directory, migrated if needed; ``EXECSTORE_*`` variables point it elsewhere).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from execstore import load_settings
from execstore.logs import NewLogEntry, archive_logs
from execstore.migrations.runner import migrate
from execstore.store import ExecStore


async def main() -> None:
    """Log two runs of a job (one long ago), archive the old one, read the whole log."""
    settings = load_settings()
    await migrate(settings.database_url, settings=settings)
    org = uuid.uuid4()
    now = dt.datetime.now(dt.UTC)
    async with ExecStore.open(settings) as store:
        async with store.unit(org) as uow:
            await uow.reference.add_organization("Logs Example Clinic")
            workflow = await uow.reference.add_workflow("Claim status check")
            job = await uow.jobs.create(workflow_id=workflow.id)
            await uow.logs.append(
                job.id,
                [
                    NewLogEntry(
                        "Opened https://provider.example.com/claims?claim=CLM000123",
                        step_index=0,
                        step_name="Open claim search",
                        timestamp=now - dt.timedelta(days=90),
                        duration_ms=812,
                    ),
                    NewLogEntry(
                        "Claim CLM000123 is PAID",
                        step_index=1,
                        step_name="Read claim status",
                        metadata={"status": "PAID", "amount": 123.45},
                        timestamp=now - dt.timedelta(days=90, seconds=-3),
                    ),
                ],
            )
            await uow.logs.append(
                job.id,
                [{"message": "Re-checked: still PAID", "level": "warning", "stepIndex": 1}],
            )
            await uow.logs.set_retention(400)  # archived logs kept 400 days (default 365)

        report = await archive_logs(
            store.engine, store.sessions, store.archives, hot_days=settings.log_hot_days
        )
        print(
            f"archived {report.counts['lines_archived']} old line(s) "
            f"in {report.counts['chunks_written']} chunk(s)"
        )

        async with store.unit(org) as uow:
            page = await uow.logs.for_job(job.id)  # hot and archived lines, in order
            for entry in page.items:
                when = f"{entry.timestamp:%Y-%m-%d %H:%M:%S}"
                print(f"{when} {entry.level.name:5} step {entry.step_index}: {entry.message}")
            warnings = await uow.logs.for_job(job.id, min_level="warn")
            print("warnings:", [e.message for e in warnings.items])
            print("last line:", (await uow.logs.tail(job.id, 1))[0].message)


if __name__ == "__main__":
    asyncio.run(main())
