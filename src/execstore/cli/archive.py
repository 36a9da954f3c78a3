"""``execstore archive ...``: archive legacy job results and reconcile rows with blobs."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from execstore.archival.reconcile import ReconcileReport, reconcile
from execstore.archival.result_format import ScreenshotUrls
from execstore.archival.results import (
    ResultArchivalReport,
    archive_job_results,
    count_legacy_results,
)
from execstore.cli._common import console, run, settings_for
from execstore.store import ExecStore

__all__ = ["app"]

app = typer.Typer(help="Move bulk to blob storage and keep pointers and blobs in step.")

UrlOption = Annotated[
    str | None, typer.Option("--url", help="Database URL (default: EXECSTORE_DATABASE_URL).")
]
BlobOption = Annotated[
    str | None, typer.Option("--blob-url", help="Blob store (default: EXECSTORE_BLOB_URL).")
]
OrgOption = Annotated[
    uuid.UUID | None, typer.Option("--org", help="Only this organization (default: all).")
]


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024 or unit == "GB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GB"


@app.command("results")
def results_command(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would move; write nothing.")
    ] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Jobs per commit.")] = 200,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after this many jobs.")
    ] = None,
    screenshot_base: Annotated[
        str | None,
        typer.Option("--screenshot-base", help="URL base screenshot key suffixes are cut from."),
    ] = None,
    org: OrgOption = None,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Move legacy full results out of jobs.result into blobs, screenshot rows and a summary."""
    settings = settings_for(url, blob_url)

    async def main() -> ResultArchivalReport:
        async with ExecStore.open(settings) as store:
            total = await count_legacy_results(store.sessions, organization_id=org)
            if limit is not None:
                total = min(total, limit)
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("measuring" if dry_run else "archiving", total=total)
                return await archive_job_results(
                    store.sessions,
                    store.archives,
                    batch_size=batch_size,
                    limit=limit,
                    dry_run=dry_run,
                    organization_id=org,
                    screenshot_urls=ScreenshotUrls(screenshot_base or settings.screenshot_base_url),
                    on_batch=lambda report: progress.update(task, completed=report.jobs_archived),
                )

    report = run(main())
    table = Table(title="result archival (dry run)" if report.dry_run else "result archival")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row(
        "jobs" + (" to archive" if report.dry_run else " archived"), f"{report.jobs_archived:,}"
    )
    table.add_row("screenshot rows", f"{report.screenshots_moved:,}")
    table.add_row("legacy screenshot rows moved", f"{report.legacy_rows_moved:,}")
    table.add_row("jobs.result before", _size(report.bytes_before))
    table.add_row("jobs.result after", _size(report.bytes_after))
    table.add_row("freed" if not report.dry_run else "would free", _size(report.bytes_freed))
    if not report.dry_run:
        table.add_row("archived (compressed)", _size(report.archive_bytes))
    console.print(table)


@app.command("reconcile")
def reconcile_command(
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Mark lost archives and delete orphan blobs past grace."),
    ] = False,
    grace_minutes: Annotated[
        float, typer.Option("--grace-minutes", min=0, help="Leave younger orphan blobs alone.")
    ] = 60.0,
    verify: Annotated[
        bool, typer.Option("--verify", help="Download every blob and check its sha256 (slow).")
    ] = False,
    org: OrgOption = None,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Check result archive rows against blobs; exit 1 if anything is lost, corrupt or orphaned."""
    settings = settings_for(url, blob_url)

    async def main() -> ReconcileReport:
        async with ExecStore.open(settings) as store:
            return await reconcile(
                store.sessions,
                store.archives,
                repair=repair,
                grace=dt.timedelta(minutes=grace_minutes),
                verify=verify,
                organization_id=org,
            )

    report = run(main())
    table = Table(title="result archives" + (" (repaired)" if repair else ""))
    table.add_column("")
    table.add_column("count", justify="right")
    table.add_row("archive rows checked", str(report.rows_checked))
    table.add_row("blobs checked", str(report.blobs_checked))
    table.add_row("lost (blob missing)", str(len(report.lost)))
    table.add_row("lost, already marked", str(len(report.still_lost)))
    table.add_row("restored", str(len(report.restored)))
    table.add_row("corrupt", str(len(report.corrupt)))
    table.add_row("orphan blobs", str(len(report.orphans)))
    table.add_row("orphans deleted", str(report.deleted))
    table.add_row("young (within grace)", str(len(report.young)))
    table.add_row("pending archival", str(len(report.pending)))
    console.print(table)
    for key in report.lost + report.corrupt:
        console.print(f"[yellow]{key}[/yellow]")
    # Lost stays a failure after marking (an operator must restore or accept it);
    # orphans are only a failure when nobody removed them.
    if report.lost or report.still_lost or report.corrupt or (report.orphans and not repair):
        raise typer.Exit(1)
