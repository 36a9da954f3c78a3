"""``execstore backfill ...``: the one-time moves of legacy rows into the optimized tables.

Every backfill is batched, resumable and verified, and reports in one shape: ``moved``,
``remaining`` (legacy rows left in every organization) and ``complete`` (its completion
is recorded, so its contract revision may run; see :mod:`execstore.operations.backfills`),
with the rows it set aside and why (exit 3).
"""

from __future__ import annotations

from typing import Annotated

import typer

from execstore.audit import backfill_audit
from execstore.cli._common import BlobOption, DryRunOption, JsonOption, OrgOption, UrlOption
from execstore.cli.batch import BatchSizeOption, LimitOption, run_batch
from execstore.logs.backfill import backfill_logs
from execstore.metadata import backfill_metadata, check_metadata
from execstore.operations import BatchReport, Progress
from execstore.rag import backfill_rag
from execstore.results import ScreenshotUrls, backfill_results
from execstore.store import ExecStore

__all__ = ["app"]

app = typer.Typer(help="Move legacy rows into the optimized tables (batched, resumable, verified).")


@app.command("results")
def results_command(
    dry_run: DryRunOption = False,
    batch_size: BatchSizeOption = 200,
    limit: LimitOption = None,
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

    Jobs that cannot be moved are set aside, listed with their reason, and left
    untouched for the next run; the command then exits 3.
    """

    async def job(store: ExecStore, on_progress: Progress) -> BatchReport:
        base = screenshot_base or store.settings.screenshot_base_url
        return await backfill_results(
            store.sessions,
            store.archives,
            batch_size=batch_size,
            limit=limit,
            dry_run=dry_run,
            organization_id=org,
            screenshot_urls=ScreenshotUrls(base),
            on_progress=on_progress,
            clock=store.clock,
        )

    run_batch(job, activity="moving", as_json=as_json, url=url, blob_url=blob_url)


@app.command("metadata")
def metadata_command(
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Compare every legacy row with what the slim row and its joins return now.",
        ),
    ] = False,
    dry_run: DryRunOption = False,
    batch_size: BatchSizeOption = 500,
    limit: LimitOption = None,
    org: OrgOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Move legacy execution metadata to slim rows (exit 3 if rows were set aside).

    With --check, compare every legacy row with its slim view (a renamed workflow is
    legitimate); a clean check of every organization records the backfill complete for
    `execstore db upgrade` (contract_execution_metadata). Unmigrated rows and unexplained
    differences are set aside (exit 3).
    """

    async def job(store: ExecStore, on_progress: Progress) -> BatchReport:
        if check:
            return await check_metadata(
                store.sessions,
                batch_size=batch_size,
                organization_id=org,
                on_progress=on_progress,
                clock=store.clock,
            )
        return await backfill_metadata(
            store.sessions,
            batch_size=batch_size,
            limit=limit,
            dry_run=dry_run,
            organization_id=org,
            on_progress=on_progress,
            clock=store.clock,
        )

    activity = "comparing" if check else "moving"
    run_batch(job, activity=activity, as_json=as_json, url=url, blob_url=blob_url)


@app.command("rag")
def rag_command(
    batch_size: BatchSizeOption = 200,
    limit: LimitOption = None,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, help="Concurrent workers (PostgreSQL; SQLite runs one)."),
    ] = 1,
    replace_differing: Annotated[
        bool,
        typer.Option(
            "--replace-differing",
            help="Rewrite a normalized copy that differs from its legacy row (else set aside).",
        ),
    ] = False,
    org: OrgOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Move legacy RAG rows to the normalized tables, verifying each (exit 3 if rows set aside).

    Safe to re-run and to run in several processes at once on PostgreSQL; when it
    reports complete, `execstore db upgrade` can run contract_rag_rules.
    """

    async def job(store: ExecStore, on_progress: Progress) -> BatchReport:
        return await backfill_rag(
            store.sessions,
            batch_size=batch_size,
            limit=limit,
            workers=workers if store.settings.dialect == "postgresql" else 1,
            organization_id=org,
            replace_differing=replace_differing,
            dry_run=dry_run,
            on_progress=on_progress,
            clock=store.clock,
        )

    run_batch(job, activity="moving", as_json=as_json, url=url, blob_url=blob_url)


@app.command("logs")
def logs_command(
    batch_size: BatchSizeOption = 5000,
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

    async def job(store: ExecStore, on_progress: Progress) -> BatchReport:
        return await backfill_logs(
            store.engine,
            store.sessions,
            batch_size=batch_size,
            swap=swap,
            dry_run=dry_run,
            lock_timeout_seconds=lock_timeout,
            pause_seconds=pause_ms / 1000,
            on_progress=on_progress,
            clock=store.clock,
        )

    run_batch(job, activity="copying", as_json=as_json, url=url, blob_url=blob_url)


@app.command("audit")
def audit_command(
    dry_run: DryRunOption = False,
    batch_size: BatchSizeOption = 500,
    limit: LimitOption = None,
    org: OrgOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Legacy PHI audit rows into the hash chain (exit 3 when rows were set aside)."""

    async def job(store: ExecStore, on_progress: Progress) -> BatchReport:
        return await backfill_audit(
            store.sessions,
            store.archives,
            batch_size=batch_size,
            organization_id=org,
            limit=limit,
            dry_run=dry_run,
            on_progress=on_progress,
            clock=store.clock,
        )

    run_batch(job, activity="moving", as_json=as_json, url=url, blob_url=blob_url)
