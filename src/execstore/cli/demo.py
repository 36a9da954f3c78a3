"""``execstore demo``: a day of a small claim-automation platform, on its own database.

SQLite and a local blob directory of its own (``.execstore/demo/``, emptied at every run),
nothing to install or start, and never the database ``EXECSTORE_DATABASE_URL`` names: the
demo writes PHI audit records, which the append-only trigger then keeps. ``--url`` and
``--blob-url`` point it elsewhere explicitly, and it refuses a database that holds any
organization. The day:

1. two organizations set up their workflows, clients and payer-portal accounts;
2. today's jobs run — each tracked for the dashboard (created, started, a dozen progress
   reports, completed or failed), with its RAG context, about sixty log lines, its result
   (summary, screenshots, the full output archived) and its PHI audit records — and a
   backlog of jobs from six weeks and from fourteen months ago is loaded the same way;
3. the nightly work: log archival (lines past the 30-day hot window go to compressed
   blobs), retention (archives past the 365-day retention are deleted), audit archival and
   checkpoints, and the reconciler;
4. what people then see: a dashboard page with names, an archived result and an archived
   log fetched twice (the second time from the cache, with its counters), an audit
   verification, and the storage report.
"""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy as sa
from rich.table import Table

from execstore.archival import reconcile
from execstore.audit import archive_audit, checkpoint_organizations, verify_audit
from execstore.cli._common import BlobOption, UrlOption, console, run, settings_for, size_text
from execstore.clock import SYSTEM_CLOCK
from execstore.config import DEFAULT_HOME, Settings
from execstore.db import create_engine
from execstore.errors import InvalidArgument
from execstore.logs import archive_logs
from execstore.migrations import runner
from execstore.report.live import live_report
from execstore.report.synthetic import Platform, SyntheticJob
from execstore.report.writer import write_jobs, write_organizations
from execstore.store import ExecStore

__all__ = ["DEMO_HOME", "run_demo"]

DEMO_HOME = DEFAULT_HOME / "demo"
"""The demo's own database and blobs, emptied at every run."""

T = TypeVar("T")


async def _timed(call: Callable[[], Awaitable[T]]) -> tuple[T, float]:
    started = time.perf_counter()
    value = await call()
    return value, (time.perf_counter() - started) * 1000


def _jobs(
    today: int, seed: int, now: dt.datetime
) -> tuple[Platform, list[SyntheticJob], list[SyntheticJob]]:
    day = Platform(
        seed=seed, organizations=2, rules=400, month_start=now - dt.timedelta(days=1), days=1
    )
    backlog = []
    for days_ago in (42, 425):
        then = Platform(
            seed=seed + days_ago,
            organizations=2,
            rules=400,
            month_start=now - dt.timedelta(days=days_ago),
            days=1,
        )
        # The same organizations: rebind the backlog's jobs to today's platform.
        for job in then.jobs(4):
            job.organization = day.organizations[0]
            job.workflow = day.organizations[0].workflows[0]
            job.client = day.organizations[0].clients[0]
            job.credentials = day.organizations[0].credentials[:1]
            backlog.append(job)
    return day, day.jobs(today), backlog


async def _refuse_a_used_database(settings: Settings) -> None:
    """Stop unless the database named explicitly holds no organization."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: sa.inspect(c).get_table_names())
            used = "organizations" in tables and (
                await connection.scalar(sa.text("SELECT count(*) FROM organizations"))
            )
    finally:
        await engine.dispose()
    if used:
        raise InvalidArgument(
            f"the demo writes PHI audit records that cannot be removed, so it runs only on an "
            f"empty database, and {settings.database_url} holds {used} organization(s); "
            "leave out --url to use the demo's own embedded database"
        )


async def _demo(settings: Settings, jobs: int, *, explicit: bool) -> None:
    started = time.perf_counter()
    if explicit:
        await _refuse_a_used_database(settings)
    console.rule("[bold]execstore demo: a day of a small claim-automation platform")
    console.print(f"database {settings.database_url}\nblobs    {settings.blob_url}\n")
    await runner.migrate(settings.database_url, settings=settings)
    # The demo is a real day: the wall clock, the store's default.
    clock = SYSTEM_CLOCK
    platform, today, backlog = _jobs(jobs, seed=secrets.randbelow(10_000), now=clock.now())
    org = platform.organizations[0]

    async with ExecStore.open(settings, clock=clock) as store:
        await write_organizations(store, platform.organizations)
        await write_jobs(store, today)
        await write_jobs(store, backlog)
        lines = sum(len(j.logs) for j in [*today, *backlog])
        records = sum(len(j.audit) for j in [*today, *backlog])
        console.print(
            f"[bold]1. the day[/bold]: {len(today)} jobs today and {len(backlog)} from the "
            f"backlog, {lines:,} log lines, {records} PHI audit records, "
            f"{len(platform.organizations)} organizations"
        )

        console.print("\n[bold]2. the nightly work[/bold]")
        archived = await archive_logs(
            store.engine,
            store.sessions,
            store.archives,
            hot_days=settings.log_hot_days,
            clock=store.clock,
        )
        moved = archived.counts
        console.print(
            f"   log archival: {moved['lines_archived']:,} lines older than "
            f"{settings.log_hot_days} days -> {moved['chunks_written']} compressed chunk(s), "
            f"{size_text(moved['raw_bytes'])} -> {size_text(moved['stored_bytes'])}"
        )
        expired = (await store.apply_retention("logs")).counts
        console.print(
            f"   retention: {expired['archives']} archived chunk(s) older than "
            f"{settings.log_retention_days} days deleted ({expired['records']:,} lines)"
        )
        audit = await archive_audit(
            store.sessions, store.archives, hot_days=settings.audit_hot_days, clock=store.clock
        )
        checkpoints = await checkpoint_organizations(
            store.sessions, store.archives, clock=store.clock
        )
        console.print(
            f"   audit: {audit.counts['records']} record(s) past the "
            f"{settings.audit_hot_days}-day hot window archived; chain heads checkpointed to "
            f"blob storage ({checkpoints.counts['written']} written)"
        )
        reports = await reconcile(
            store.sessions, store.archives, store.archive_kinds, clock=store.clock
        )
        clean = not any(r.needs_attention for r in reports)
        console.print(
            "   reconcile: "
            + ", ".join(
                f"{r.details['kind']} {r.counts['rows_checked']} pointer(s)" for r in reports
            )
            + (" — all blobs present" if clean else " — [red]problems found[/red]")
        )

        console.print(f"\n[bold]3. the dashboard[/bold] ({org.name}, newest first)")
        async with store.unit(org.id) as uow:
            page = await uow.metadata.list(limit=8)
        table = Table("created", "workflow", "client", "insuree", "account", "status", "steps")
        for item in page.items:
            table.add_row(
                f"{item.created_at:%Y-%m-%d %H:%M}",
                item.workflow_name,
                item.client_name or "-",
                item.insuree_name or "-",
                item.primary_account_name or "-",
                item.status.name.lower(),
                f"{item.completed_steps}/{item.total_steps} ({item.progress_percent}%)",
            )
        console.print(table)

        console.print("\n[bold]4. an investigator[/bold]")
        cache = store.archives.cache
        assert cache is not None
        job = (
            today[0]
            if today[0].organization is org
            else next(j for j in today if j.organization is org)
        )
        async with store.unit(org.id) as uow:
            summary = await uow.results.get(job.id)
            _, cold = await _timed(lambda: uow.results.detail(job.id))
            before = cache.stats()
            detail, warm = await _timed(lambda: uow.results.detail(job.id))
        console.print(
            f"   result of job {job.id}: {summary.total_steps} steps, "
            f"{summary.screenshot_count} screenshots; full output "
            f"{len(detail.output['stepResults'])} step results — cold {cold:.1f} ms, "
            f"again {warm:.2f} ms (cache hits {before.hits} -> {cache.stats().hits})"
        )
        old = backlog[0]
        async with store.unit(org.id) as uow:
            page_cold, cold = await _timed(lambda: uow.logs.for_job(old.id, limit=5))
            before = cache.stats()
            _, warm = await _timed(lambda: uow.logs.for_job(old.id, limit=5))
        stats = cache.stats()
        console.print(
            f"   archived log of a job from {old.created_at:%Y-%m-%d}: "
            f"first line {page_cold.items[0].message[:50]!r}… — cold {cold:.1f} ms, "
            f"again {warm:.2f} ms (hits {before.hits} -> {stats.hits}, misses {stats.misses}, "
            f"{stats.entries} payload(s), {size_text(stats.current_bytes)} of "
            f"{size_text(stats.max_bytes)})"
        )
        verified = await verify_audit(store.sessions, store.archives)
        console.print(
            f"   audit verify: {verified.counts['records']} record(s) in "
            f"{verified.counts['organizations']} chain(s), "
            + (
                f"[red]{verified.set_aside[0].reason}[/red]"
                if verified.needs_attention
                else "[green]intact[/green]"
            )
        )

        console.print("\n[bold]5. the storage report[/bold]")
        report = await live_report(store, exact=True)
    busy = [t for t in report["tables"] if t["rows"]]
    table = Table("table", "rows", "bytes", "bytes/row", title="tables that hold rows")
    for row in sorted(busy, key=lambda t: -t["total_bytes"])[:10]:
        table.add_row(
            row["name"],
            f"{row['rows']:,}",
            size_text(row["total_bytes"]),
            f"{row['bytes_per_row']:,.0f}",
        )
    console.print(table)
    blobs = Table("archive kind", "blobs", "records", "compressed", "raw", title="blob storage")
    for kind, totals in report["archives"].items():
        blobs.add_row(
            kind,
            str(totals["archives"]),
            f"{totals['records']:,}",
            size_text(totals["stored_bytes"]),
            size_text(totals["raw_bytes"]),
        )
    console.print(blobs)
    console.print(
        f"\ndone in {time.perf_counter() - started:.1f} s. Next: `execstore storage-report "
        "--simulate --jobs 500` measures a whole month against the plan's targets."
    )


def run_demo(
    url: UrlOption = None,
    blob_url: BlobOption = None,
    jobs: int = 24,
) -> None:
    """Run a day of a small platform on the demo's own embedded database and show what it left.

    The database and blobs are ``.execstore/demo/``, emptied first; EXECSTORE_DATABASE_URL
    and EXECSTORE_BLOB_URL are not used. ``--url`` runs it on another database, which must
    hold no organization.
    """
    explicit = url is not None
    if url is None:
        shutil.rmtree(DEMO_HOME, ignore_errors=True)
        url = f"sqlite+aiosqlite:///{DEMO_HOME / 'execstore.db'}"
        blob_url = blob_url or f"file:{DEMO_HOME / 'blobs'}"
    run(_demo(settings_for(url, blob_url), jobs, explicit=explicit))
