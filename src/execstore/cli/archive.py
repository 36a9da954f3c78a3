"""``execstore archive ...``: move bulk to blob storage; keep pointer rows and blobs in step.

``archive logs`` and ``archive audit`` are recurring jobs (schedule them); the one-time
move of legacy results is ``execstore backfill results``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from execstore.archival import reconcile
from execstore.audit import archive_audit
from execstore.cli._common import BlobOption, DryRunOption, JsonOption, OrgOption, UrlOption
from execstore.cli.batch import run_batch
from execstore.logs import archive_logs
from execstore.operations import BatchReport, Progress
from execstore.store import ExecStore

__all__ = ["app"]

app = typer.Typer(help="Move bulk to blob storage and keep pointer rows and blobs in step.")


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

    async def job(store: ExecStore, on_progress: Progress) -> BatchReport:
        settings = store.settings
        days = settings.audit_hot_days if hot_days is None else hot_days
        return await archive_audit(
            store.sessions,
            store.archives,
            hot_days=days,
            organization_id=org,
            segment_records=segment_records,
            dry_run=dry_run,
            on_progress=on_progress,
            clock=store.clock,
        )

    run_batch(job, activity="archiving", as_json=as_json, url=url, blob_url=blob_url)


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

    async def job(store: ExecStore, on_progress: Progress) -> BatchReport:
        settings = store.settings
        return await archive_logs(
            store.engine,
            store.sessions,
            store.archives,
            hot_days=settings.log_hot_days,
            chunk_rows=chunk_rows or settings.log_archive_chunk_rows,
            dry_run=dry_run,
            on_progress=on_progress,
            clock=store.clock,
        )

    run_batch(job, activity="archiving", as_json=as_json, url=url, blob_url=blob_url)


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

    async def job(store: ExecStore, on_progress: Progress) -> list[BatchReport]:
        del on_progress
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

    run_batch(job, activity="reconciling", as_json=as_json, url=url, blob_url=blob_url)
