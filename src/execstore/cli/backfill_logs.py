"""``execstore backfill logs``: the online migration off the legacy ``execution_log``."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from execstore.cli._common import (
    BlobOption,
    DryRunOption,
    JsonOption,
    UrlOption,
    console,
    emit,
    progress,
    run,
    settings_for,
    show_set_aside,
    summary_table,
)
from execstore.logs.backfill import LogBackfillReport, backfill_logs
from execstore.store import ExecStore

__all__ = ["logs_command"]


def logs_command(
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Legacy rows per transaction.")
    ] = 5000,
    swap: Annotated[
        bool,
        typer.Option(
            "--swap/--no-swap", help="Finish with the swap and verification (default) or stop."
        ),
    ] = True,
    pause_ms: Annotated[
        int, typer.Option("--pause-ms", min=0, help="Pause between batches (throttle).")
    ] = 0,
    lock_timeout: Annotated[
        float, typer.Option("--lock-timeout", min=0.1, help="Seconds the swap waits for writers.")
    ] = 30.0,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Copy execution_log into the partitioned table, swap atomically, verify, empty it."""
    settings = settings_for(url, blob_url)

    async def main() -> LogBackfillReport:
        async with ExecStore.open(settings) as store:
            with progress("checking" if dry_run else "copying", None) as advance:
                return await backfill_logs(
                    store.engine,
                    store.sessions,
                    batch_size=batch_size,
                    swap=swap,
                    dry_run=dry_run,
                    lock_timeout_seconds=lock_timeout,
                    pause_seconds=pause_ms / 1000,
                    on_progress=lambda r: advance(r.copied),
                    clock=store.clock,
                )

    report = run(main())

    def render() -> None:
        table = summary_table("execution_log backfill" + (" (dry run)" if report.dry_run else ""))
        if not report.legacy_table:
            table.add_row("legacy table", "gone (contract_execution_log ran)")
        table.add_row("phase", report.phase)
        table.add_row("legacy rows at start", f"{report.legacy_rows:,}")
        table.add_row("copied this run", f"{report.copied:,}")
        table.add_row("queued changes applied", f"{report.changes_applied:,}")
        table.add_row("swapped this run", "yes" if report.swapped else "no")
        table.add_row("verified this run", "yes" if report.verified else "no")
        if report.checksum:
            table.add_row(
                "lines compared (legacy/moved)",
                f"{report.legacy_checked:,}/{report.moved_checked:,}",
            )
            table.add_row("checksum", report.checksum)
        table.add_row("legacy rows removed", f"{report.legacy_rows_removed:,}")
        table.add_row("set aside", f"{report.set_aside_total:,}")
        console.print(table)
        show_set_aside(report.set_aside, label="legacy id")
        for job in report.mismatched_jobs[:20]:
            console.print(f"[red]checksum differs for job {job}[/red]")

    emit(dataclasses.asdict(report), as_json=as_json, render=render, problems=report.problems)
