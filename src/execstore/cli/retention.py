"""``execstore retention ...``: how long archived logs are kept, per organization."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated

import typer
from rich.table import Table

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
    size_text,
)
from execstore.logs import LogRetention
from execstore.logs.retention import LogRetentionReport, run_retention
from execstore.store import ExecStore

__all__ = ["app"]

app = typer.Typer(help="Archived log retention: run it, set or show an organization's.")

RequiredOrg = Annotated[uuid.UUID, typer.Option("--org", help="The organization.")]


@app.command("run")
def run_command(
    dry_run: DryRunOption = False,
    org: OrgOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Delete archived log chunks older than their organization's retention (blob, then row)."""
    settings = settings_for(url, blob_url)

    async def main() -> LogRetentionReport:
        async with ExecStore.open(settings) as store:
            with progress("measuring" if dry_run else "deleting", None) as advance:
                return await run_retention(
                    store.sessions,
                    store.archives,
                    default_days=settings.log_retention_days,
                    hot_days=settings.log_hot_days,
                    dry_run=dry_run,
                    organization_id=org,
                    on_progress=lambda r: advance(r.chunks_deleted),
                )

    report = run(main())

    def render() -> None:
        title = "log retention (dry run)" if report.dry_run else "log retention"
        table = Table(title=title)
        table.add_column("")
        table.add_column("value", justify="right")
        verb = "to delete" if report.dry_run else "deleted"
        table.add_row("organizations", f"{report.organizations:,}")
        table.add_row(f"chunks {verb}", f"{report.chunks_deleted:,}")
        table.add_row(f"lines {verb}", f"{report.lines_deleted:,}")
        table.add_row(f"blob bytes {verb}", size_text(report.bytes_deleted))
        table.add_row("set aside", f"{len(report.set_aside):,}")
        console.print(table)
        for aside in report.set_aside[:20]:
            console.print(f"[yellow]{aside.id}: {aside.reason}[/yellow]")

    emit(dataclasses.asdict(report), as_json=as_json, render=render)
    if report.problems:
        raise typer.Exit(ExitCode.PROBLEMS)


def _show(retention: LogRetention, as_json: bool) -> None:
    def render() -> None:
        source = "default" if retention.is_default else "own setting"
        console.print(
            f"organization {retention.organization_id}: archived logs kept "
            f"[bold]{retention.retention_days}[/bold] days ({source}); hot window "
            f"{retention.hot_days} days"
        )

    emit(retention.model_dump(mode="json"), as_json=as_json, render=render)


@app.command("set")
def set_command(
    org: RequiredOrg,
    days: Annotated[
        int | None, typer.Option("--days", min=1, help="Keep archived logs this many days.")
    ] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Back to the configured default.")] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Set an organization's log retention (refused below the hot window)."""
    if (days is None) == (not reset):
        raise typer.BadParameter("give either --days N or --reset")
    settings = settings_for(url)

    async def main() -> LogRetention:
        async with ExecStore.open(settings) as store, store.unit(org) as uow:
            return await uow.logs.set_retention(None if reset else days)

    _show(run(main()), as_json)


@app.command("show")
def show_command(
    org: RequiredOrg,
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Show an organization's log retention."""
    settings = settings_for(url)

    async def main() -> LogRetention:
        async with ExecStore.open(settings) as store, store.unit(org) as uow:
            return await uow.logs.retention()

    _show(run(main()), as_json)
