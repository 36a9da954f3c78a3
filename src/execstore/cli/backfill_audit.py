"""``execstore backfill audit``: legacy PHI audit rows into the compact, hash-chained table."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from execstore.audit import AuditBackfillReport, backfill_audit, count_legacy_audit
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
    summary_table,
)
from execstore.store import ExecStore

__all__ = ["audit_command"]


def audit_command(
    dry_run: DryRunOption = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per commit.")] = 500,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after this many rows.")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only count the legacy rows left (exit 3 if any).")
    ] = False,
    org: OrgOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Legacy PHI audit rows into the hash chain (exit 3 when rows were set aside)."""
    settings = settings_for(url, blob_url)

    async def main() -> tuple[int, AuditBackfillReport | None]:
        async with ExecStore.open(settings) as store:
            total = await count_legacy_audit(store.sessions, organization_id=org)
            if check:
                return total, None
            with progress("measuring" if dry_run else "moving", total) as advance:
                report = await backfill_audit(
                    store.sessions,
                    store.archives,
                    batch_size=batch_size,
                    organization_id=org,
                    limit=limit,
                    dry_run=dry_run,
                    on_batch=lambda r: advance(r.moved + len(r.set_aside)),
                    clock=store.clock,
                )
            return total, report

    total, report = run(main())
    if report is None:
        emit(
            {"legacy_rows": total},
            as_json=as_json,
            render=lambda: console.print(f"{total:,} legacy audit row(s) left"),
        )
        if total:
            raise typer.Exit(ExitCode.PROBLEMS)
        return

    def render() -> None:
        assert report is not None
        table = summary_table("audit backfill (dry run)" if report.dry_run else "audit backfill")
        table.add_row("legacy rows before", f"{total:,}")
        table.add_row("would move" if report.dry_run else "moved", f"{report.moved:,}")
        table.add_row("organizations", f"{report.organizations:,}")
        table.add_row("dictionaries trained", str(report.dictionaries))
        table.add_row("checkpoints written", str(report.checkpoints))
        table.add_row("set aside", str(len(report.set_aside)))
        console.print(table)
        show_set_aside(report.set_aside, label="legacy id")

    emit(
        dataclasses.asdict(report) | {"legacy_rows_before": total},
        as_json=as_json,
        render=render,
        problems=bool(report.set_aside),
    )
