"""``execstore backfill rag``: legacy RAG JSON rows -> normalized contexts, each verified."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.table import Table

from execstore.cli._common import (
    BlobOption,
    DryRunOption,
    JsonOption,
    OrgOption,
    UrlOption,
    console,
    emit,
    progress,
    run,
    settings_for,
    show_set_aside,
)
from execstore.migrations.runner import rag_contracted_revisions
from execstore.rag import RagBackfillReport, backfill_rag, backfill_status
from execstore.store import ExecStore

__all__ = ["rag_command"]


def rag_command(
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per commit.")] = 200,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after this many rows.")
    ] = None,
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
    settings = settings_for(url, blob_url)

    async def main() -> RagBackfillReport | None:
        async with ExecStore.open(settings) as store:
            if store.revision in rag_contracted_revisions():
                return None  # contract_rag_rules ran: the legacy table, and the work, are gone
            count = workers if settings.dialect == "postgresql" else 1
            before = await backfill_status(store.sessions)
            total = before.remaining if limit is None else min(before.remaining, limit)
            with progress("checking" if dry_run else "moving RAG contexts", total) as advance:
                return await backfill_rag(
                    store.sessions,
                    batch_size=batch_size,
                    limit=limit,
                    workers=count,
                    organization_id=org,
                    replace_differing=replace_differing,
                    dry_run=dry_run,
                    on_batch=lambda r: advance(r.verified + len(r.set_aside)),
                    clock=store.clock,
                )

    found = run(main())
    if found is None:
        emit(
            {"dry_run": dry_run, "moved": 0, "legacy_table": False, "complete": True},
            as_json=as_json,
            render=lambda: console.print(
                "nothing to backfill: contract_rag_rules already dropped the legacy table"
            ),
        )
        return
    report = found
    status = report.status

    def render() -> None:
        table = Table(
            title="RAG backfill (dry run: nothing changed)" if dry_run else "RAG backfill"
        )
        table.add_column("")
        table.add_column("rows", justify="right")
        verb = "would be moved" if dry_run else "moved and verified"
        table.add_row(verb, f"{report.moved:,}")
        table.add_row("already normalized, verified", f"{report.already_normalized:,}")
        table.add_row("set aside", f"{len(report.set_aside):,}")
        if status is not None:
            table.add_row("legacy rows", f"{status.legacy_rows:,}")
            table.add_row("verified in all", f"{status.verified_rows:,}")
            table.add_row("remaining", f"{status.remaining:,}")
        console.print(table)
        show_set_aside(report.set_aside, label="legacy id")
        if status is not None and status.complete and not dry_run:
            console.print("complete: every legacy row is verified; contract_rag_rules may run")

    emit(
        {
            "dry_run": dry_run,
            "batches": report.batches,
            "moved": report.moved,
            "already_normalized": report.already_normalized,
            "set_aside": [dataclasses.asdict(s) for s in report.set_aside],
            "legacy_rows": status.legacy_rows if status else None,
            "verified_rows": status.verified_rows if status else None,
            "remaining": status.remaining if status else None,
            "complete": status.complete if status else False,
        },
        as_json=as_json,
        render=render,
        problems=bool(report.set_aside),
    )
