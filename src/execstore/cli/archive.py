"""``execstore archive ...``: move bulk to blob storage; keep pointer rows and blobs in step."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Annotated

import typer
from rich.table import Table

from execstore.archival import ReconcileReport, reconcile
from execstore.audit import AuditArchivalReport, archive_audit
from execstore.cli._common import (
    BlobOption,
    DryRunOption,
    ExitCode,
    JsonOption,
    OrgOption,
    UrlOption,
    console,
    emit,
    progress,
    run,
    settings_for,
    show_set_aside,
    size_text,
    summary_table,
)
from execstore.logs import LogArchivalReport, archive_logs
from execstore.results import (
    ResultArchivalReport,
    ScreenshotUrls,
    archive_job_results,
    count_legacy_results,
)
from execstore.store import ExecStore

__all__ = ["app"]

app = typer.Typer(help="Move bulk to blob storage and keep pointer rows and blobs in step.")


@app.command("results")
def results_command(
    dry_run: DryRunOption = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Jobs per commit.")] = 200,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after this many jobs.")
    ] = None,
    screenshot_base: Annotated[
        str | None,
        typer.Option("--screenshot-base", help="URL base screenshot key suffixes are cut from."),
    ] = None,
    org: OrgOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Move legacy full results out of jobs.result into blobs, screenshot rows and a summary.

    Jobs that cannot be archived are set aside, listed with their reason, and left
    untouched for the next run; the command then exits 3.
    """
    settings = settings_for(url, blob_url)

    async def main() -> ResultArchivalReport:
        async with ExecStore.open(settings) as store:
            total = await count_legacy_results(store.sessions, organization_id=org)
            if limit is not None:
                total = min(total, limit)
            with progress("measuring" if dry_run else "archiving", total) as advance:
                return await archive_job_results(
                    store.sessions,
                    store.archives,
                    batch_size=batch_size,
                    limit=limit,
                    dry_run=dry_run,
                    organization_id=org,
                    screenshot_urls=ScreenshotUrls(screenshot_base or settings.screenshot_base_url),
                    on_batch=lambda report: advance(report.jobs_seen),
                    clock=store.clock,
                )

    report = run(main())

    def render() -> None:
        table = summary_table("result archival (dry run)" if report.dry_run else "result archival")
        verb = " to archive" if report.dry_run else " archived"
        table.add_row("jobs" + verb, f"{report.jobs_archived:,}")
        table.add_row("screenshot rows", f"{report.screenshots_moved:,}")
        table.add_row("legacy screenshot rows moved", f"{report.legacy_rows_moved:,}")
        table.add_row("jobs.result before", size_text(report.bytes_before))
        table.add_row("jobs.result after", size_text(report.bytes_after))
        table.add_row("would free" if report.dry_run else "freed", size_text(report.bytes_freed))
        if not report.dry_run:
            table.add_row("archived (compressed)", size_text(report.archive_bytes))
        table.add_row("jobs set aside", f"{report.jobs_set_aside:,}")
        console.print(table)
        show_set_aside(report.set_aside, label="job")

    data = dataclasses.asdict(report) | {
        "bytes_freed": report.bytes_freed,
        "jobs_set_aside": report.jobs_set_aside,
    }
    emit(data, as_json=as_json, render=render, problems=bool(report.set_aside))


@app.command("audit")
def audit_command(
    dry_run: DryRunOption = False,
    hot_days: Annotated[
        float | None,
        typer.Option("--hot-days", min=0, help="Keep this many days hot (default: setting)."),
    ] = None,
    segment_records: Annotated[
        int, typer.Option("--segment-records", min=1, help="Records per archived segment.")
    ] = 50_000,
    org: OrgOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Move audit records older than the hot window into verified segments (exit 3: set aside)."""
    settings = settings_for(url, blob_url)
    days = settings.audit_hot_days if hot_days is None else hot_days

    async def main() -> AuditArchivalReport:
        async with ExecStore.open(settings) as store:
            with progress("measuring" if dry_run else "archiving", None) as advance:
                return await archive_audit(
                    store.sessions,
                    store.archives,
                    hot_days=days,
                    organization_id=org,
                    segment_records=segment_records,
                    dry_run=dry_run,
                    on_progress=lambda report: advance(report.records),
                    clock=store.clock,
                )

    report = run(main())

    def render() -> None:
        table = summary_table("audit archival (dry run)" if report.dry_run else "audit archival")
        table.add_row("organizations", f"{report.organizations:,}")
        table.add_row(
            "segments" + (" (first per organization)" if dry_run else ""), f"{report.segments:,}"
        )
        table.add_row("records", f"{report.records:,}")
        table.add_row("records (raw NDJSON)", size_text(report.raw_bytes))
        if not report.dry_run:
            table.add_row("archived (compressed)", size_text(report.archive_bytes))
        table.add_row("set aside", str(len(report.set_aside)))
        console.print(table)
        show_set_aside(report.set_aside, label="organization")

    emit(
        dataclasses.asdict(report), as_json=as_json, render=render, problems=bool(report.set_aside)
    )


@app.command("logs")
def logs_command(
    dry_run: DryRunOption = False,
    chunk_rows: Annotated[
        int | None,
        typer.Option("--chunk-rows", min=1, help="Lines per archive chunk (default: setting)."),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Move log lines older than the hot window into verified chunks; drop their months."""
    settings = settings_for(url, blob_url)

    async def main() -> LogArchivalReport:
        async with ExecStore.open(settings) as store:
            hot_days = settings.log_hot_days
            rows = chunk_rows or settings.log_archive_chunk_rows
            plan = await archive_logs(
                store.engine,
                store.sessions,
                store.archives,
                hot_days=hot_days,
                chunk_rows=rows,
                dry_run=True,
                clock=store.clock,
            )
            if dry_run:
                return plan
            with progress("archiving", plan.lines_eligible or None) as advance:
                return await archive_logs(
                    store.engine,
                    store.sessions,
                    store.archives,
                    hot_days=hot_days,
                    chunk_rows=rows,
                    on_progress=lambda r: advance(r.lines_archived),
                    clock=store.clock,
                )

    report = run(main())

    def render() -> None:
        table = summary_table("log archival (dry run)" if report.dry_run else "log archival")
        if report.waiting_for_backfill:
            table.add_row("waiting", "execstore backfill logs has not verified yet")
        if report.dry_run:
            table.add_row("lines to archive", f"{report.lines_eligible:,}")
            table.add_row("hot bytes to free", size_text(report.hot_bytes_eligible))
        else:
            table.add_row("lines archived", f"{report.lines_archived:,}")
            table.add_row("chunks written", f"{report.chunks_written:,}")
            table.add_row("chunks skipped (done before/by a peer)", f"{report.chunks_skipped:,}")
            table.add_row("archived (raw)", size_text(report.raw_bytes))
            table.add_row("archived (compressed)", size_text(report.stored_bytes))
            table.add_row("lines deleted (batched)", f"{report.lines_deleted:,}")
            table.add_row("partitions detached", ", ".join(report.partitions_detached) or "-")
            table.add_row("partitions dropped", ", ".join(report.partitions_dropped) or "-")
            table.add_row("hot bytes freed", size_text(report.hot_bytes_freed))
            table.add_row("kept (lines set aside)", ", ".join(report.partitions_kept) or "-")
            table.add_row("busy (another worker)", ", ".join(report.busy) or "-")
        table.add_row("set aside", f"{len(report.set_aside):,}")
        console.print(table)
        show_set_aside(report.set_aside, label="lines")

    emit(dataclasses.asdict(report), as_json=as_json, render=render, problems=report.problems)


@app.command("reconcile")
def reconcile_command(
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Mark lost archives; delete orphan blobs past the grace."),
    ] = False,
    grace_minutes: Annotated[
        float, typer.Option("--grace-minutes", min=0, help="Leave younger orphan blobs alone.")
    ] = 60.0,
    verify: Annotated[
        bool, typer.Option("--verify", help="Download every blob and check its sha256 (slow).")
    ] = False,
    org: OrgOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Check every archive kind's pointer rows against its blobs (exit 3 on problems)."""
    settings = settings_for(url, blob_url)

    async def main() -> list[ReconcileReport]:
        async with ExecStore.open(settings) as store:
            return await reconcile(
                store.sessions,
                store.archives,
                store.archive_kinds,
                repair=repair,
                grace=dt.timedelta(minutes=grace_minutes),
                verify=verify,
                organization_id=org,
                clock=store.clock,
            )

    reports = run(main())

    def render() -> None:
        table = Table(title="archives" + (" (repaired)" if repair else ""))
        table.add_column("")
        for report in reports:
            table.add_column(report.kind, justify="right")
        rows: list[tuple[str, Callable[[ReconcileReport], int]]] = [
            ("pointer rows checked", lambda r: r.rows_checked),
            ("blobs checked", lambda r: r.blobs_checked),
            ("lost (blob missing)", lambda r: len(r.lost)),
            ("lost, already marked", lambda r: len(r.still_lost)),
            ("restored", lambda r: len(r.restored)),
            ("corrupt", lambda r: len(r.corrupt)),
            ("orphan blobs", lambda r: len(r.orphans)),
            ("orphans deleted", lambda r: r.deleted),
            ("young (within grace)", lambda r: len(r.young)),
            ("pending archival", lambda r: len(r.pending)),
            ("crash leftovers", lambda r: len(r.leftovers)),
        ]
        for label, value in rows:
            table.add_row(label, *(str(value(r)) for r in reports))
        console.print(table)
        for report in reports:
            for key in report.lost + report.corrupt:
                console.print(f"[yellow]{report.kind}: {key}[/yellow]")
            verb = "removed" if report.repair else "found"
            for path in report.leftovers:
                console.print(f"{report.kind}: crash leftover {verb}: {path}", markup=False)

    emit(
        {"reports": [dataclasses.asdict(r) for r in reports]},
        as_json=as_json,
        render=render,
    )
    # Lost stays a problem after marking (an operator must restore or accept it);
    # orphans and leftovers are only a problem when nobody removed them.
    if any(report.problems for report in reports):
        raise typer.Exit(ExitCode.PROBLEMS)
