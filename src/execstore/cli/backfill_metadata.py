"""``execstore backfill metadata [--check]``: move the legacy fat rows, then verify the move."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

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
from execstore.metadata.backfill import (
    BackfillReport,
    backfill_metadata,
    count_legacy,
    count_unmoved,
)
from execstore.metadata.check import EXPLAINED, CheckReport, check_metadata
from execstore.store import ExecStore

__all__ = ["backfill_metadata_command"]

_SHOWN = 50  # mismatches listed in the table; --json lists every one


def backfill_metadata_command(
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Compare every legacy row with what the slim row and its joins return now.",
        ),
    ] = False,
    dry_run: DryRunOption = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Rows per commit.")] = 500,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after this many legacy rows.")
    ] = None,
    org: OrgOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Move legacy execution metadata to slim rows (exit 3 if rows were set aside).

    With --check, report every difference (a renamed workflow is legitimate) and record a
    clean result for `execstore db upgrade` (contract_execution_metadata); exit 3 while
    rows are unmigrated or differences unexplained.
    """
    settings = settings_for(url, blob_url)
    if check:
        _check(settings, batch_size, org, as_json)
        return

    async def main() -> BackfillReport:
        async with ExecStore.open(settings) as store:
            total = await count_unmoved(store.sessions, organization_id=org)
            if limit is not None:
                total = min(total, limit)
            with progress("checking" if dry_run else "moving", total) as advance:
                return await backfill_metadata(
                    store.sessions,
                    batch_size=batch_size,
                    limit=limit,
                    dry_run=dry_run,
                    organization_id=org,
                    on_batch=lambda report: advance(report.examined),
                )

    report = run(main())

    def render() -> None:
        if not report.legacy_table_present:
            console.print("nothing to move: execution_metadata_legacy was dropped (contract)")
            return
        table = Table(title="metadata backfill" + (" (dry run)" if report.dry_run else ""))
        table.add_column("")
        table.add_column("rows", justify="right")
        table.add_row("legacy rows examined", f"{report.examined:,}")
        table.add_row("would move" if report.dry_run else "moved", f"{report.moved:,}")
        table.add_row("set aside", f"{len(report.set_aside):,}")
        console.print(table)
        show_set_aside(report.set_aside, label="legacy id")

    emit(
        dataclasses.asdict(report), as_json=as_json, render=render, problems=bool(report.set_aside)
    )


def _check(settings: Any, batch_size: int, org: Any, as_json: bool) -> None:
    async def main() -> CheckReport:
        async with ExecStore.open(settings) as store:
            total = await count_legacy(store.sessions, organization_id=org)
            with progress("comparing", total) as advance:
                return await check_metadata(
                    store.sessions,
                    batch_size=batch_size,
                    organization_id=org,
                    on_batch=lambda report: advance(report.legacy_rows),
                    clock=store.clock,
                )

    report = run(main())

    def render() -> None:
        if not report.legacy_table_present:
            console.print("nothing to check: execution_metadata_legacy was dropped (contract)")
            return
        table = Table(title="metadata backfill check")
        table.add_column("")
        table.add_column("rows", justify="right")
        table.add_row("legacy rows", f"{report.legacy_rows:,}")
        table.add_row("compared with their slim view", f"{report.compared:,}")
        table.add_row("identical", f"{report.identical:,}")
        table.add_row("unmigrated", f"{len(report.unmigrated):,}")
        table.add_row("orphaned (job deleted; explained)", f"{len(report.orphaned):,}")
        for kind, count in sorted(report.explained.items()):
            table.add_row(f"differences: {kind} (explained)", f"{count:,}")
        table.add_row("differences: unexplained", f"{report.unexplained_count:,}")
        console.print(table)
        show_set_aside(report.unmigrated, "unmigrated", label="legacy id")
        _list_mismatches(report.unexplained, "unexplained differences")
        _list_mismatches(report.examples, "explained differences (examples)")
        if report.clean and report.recorded:
            console.print(
                "clean: recorded for `execstore db upgrade` (contract_execution_metadata)"
            )

    data = dataclasses.asdict(report) | {"clean": report.clean, "kinds": EXPLAINED}
    emit(data, as_json=as_json, render=render, problems=not report.clean)


def _list_mismatches(rows: list[Any], title: str) -> None:
    if not rows:
        return
    table = Table(title=title)
    for column in ("job", "field", "legacy", "now", "kind"):
        table.add_column(column)
    for row in rows[:_SHOWN]:
        table.add_row(row.job_id, row.field, repr(row.legacy), repr(row.now), row.kind or "")
    console.print(table)
