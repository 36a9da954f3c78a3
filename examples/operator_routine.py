"""An operator's nightly routine from Python (what the scheduled CLI commands run).

Run with ``.venv/bin/python examples/operator_routine.py`` (the embedded SQLite database and local
blob directory, migrated if needed; ``EXECSTORE_*`` variables point it elsewhere). Most
deployments schedule the CLI instead — ``execstore maintain``, ``archive logs``,
``retention run``, ``archive audit``, ``archive reconcile --repair``, ``audit verify`` —
and this script calls the same functions in the same order, with a little data to act on.
Every job returns the same report (``counts``, ``set_aside``, ``needs_attention``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from execstore import ExecStore, load_settings
from execstore.archival import reconcile
from execstore.audit import archive_audit, checkpoint_organizations, verify_audit
from execstore.logs import archive_logs
from execstore.logs.maintenance import maintain_log_partitions
from execstore.migrations.runner import migrate
from execstore.report.live import live_report


async def seed(store: ExecStore, org: uuid.UUID) -> None:
    """A job that logged two months ago and one that logged today; one audited access."""
    now = store.clock.now()  # the store's clock: the wall clock unless given another
    async with store.unit(org) as uow:
        await uow.reference.add_organization("Operator Example Clinic")
        workflow = await uow.reference.add_workflow("Claim status check")
        for days_ago in (60, 0):
            job = await uow.jobs.create(workflow_id=workflow.id)
            at = now - dt.timedelta(days=days_ago)
            await uow.logs.append(
                job.id,
                [
                    {"message": f"step {n} done", "step_index": n, "timestamp": at}
                    for n in range(20)
                ],
            )
        await uow.audit.record({"action": "export", "resource_type": "claim", "purpose": "payment"})


async def main() -> None:
    """Maintenance, archival, retention, checkpoints, reconcile, verification, report."""
    settings = load_settings()
    await migrate(settings.database_url, settings=settings)
    async with ExecStore.open(settings) as store:
        await seed(store, uuid.uuid4())
        # Every job takes the store's clock, so a test can run this routine years ahead.
        clock = store.clock
        partitions = await maintain_log_partitions(
            store.engine,
            mode=settings.log_partition_mode,
            months_ahead=settings.log_months_ahead,
            clock=clock,
        )
        kept = partitions.details["skipped"] or "kept ahead"
        print(f"partitions: {partitions.counts['partitions']} ({kept})")
        logs = await archive_logs(
            store.engine,
            store.sessions,
            store.archives,
            hot_days=settings.log_hot_days,
            clock=clock,
        )
        lines, chunks = logs.counts["lines_archived"], logs.counts["chunks_written"]
        print(f"archive logs: {lines} line(s) in {chunks} chunk(s)")
        for kind in ("logs", "audit"):  # days: EXECSTORE_LOG_/AUDIT_RETENTION_DAYS
            expired = await store.apply_retention(kind)
            print(f"retention {kind}: {expired.counts['archives']} archive(s) deleted")
        audit = await archive_audit(
            store.sessions, store.archives, hot_days=settings.audit_hot_days, clock=clock
        )
        checkpoints = await checkpoint_organizations(store.sessions, store.archives, clock=clock)
        written = checkpoints.counts["written"]
        print(f"audit: {audit.counts['records']} archived, {written} checkpoint(s) written")
        reports = await reconcile(
            store.sessions, store.archives, store.archive_kinds, repair=True, clock=clock
        )
        print("; ".join(f"{r.job}: attention={r.needs_attention}" for r in reports))
        verified = await verify_audit(store.sessions, store.archives)
        records, intact = verified.counts["records"], not verified.needs_attention
        print(f"audit verify: {records} record(s), intact={intact}")
        report = await live_report(store)
        print(f"database: {report['database_bytes']:,} bytes; blobs: {report['blob_bytes']:,}")


if __name__ == "__main__":
    asyncio.run(main())
