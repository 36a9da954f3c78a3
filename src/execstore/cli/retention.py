"""``execstore retention run``: delete what is past its retention, never what must be kept."""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated

import typer
from rich.table import Table

from execstore.audit import AuditRetentionReport, apply_audit_retention
from execstore.cli._common import (
    BlobOption,
    DryRunOption,
    ExitCode,
    JsonOption,
    OrgOption,
    UrlOption,
    console,
    emit,
    run,
    settings_for,
    size_text,
)
from execstore.store import ExecStore

__all__ = ["app"]

app = typer.Typer(help="Delete archives past their retention.")


class Kind(enum.StrEnum):
    """What retention applies to."""

    ALL = "all"
    AUDIT = "audit"


@app.command("run")
def run_command(
    kind: Annotated[Kind, typer.Option("--kind", help="Which archives.")] = Kind.ALL,
    dry_run: DryRunOption = False,
    audit_days: Annotated[
        int | None,
        typer.Option(
            "--audit-days",
            help="Audit retention in days (default EXECSTORE_AUDIT_RETENTION_DAYS; "
            "never below six years).",
        ),
    ] = None,
    org: OrgOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Delete archived segments past retention (exit 3 when some were set aside)."""
    settings = settings_for(url, blob_url)

    async def main() -> AuditRetentionReport:
        async with ExecStore.open(settings) as store:
            return await apply_audit_retention(
                store.sessions,
                store.archives,
                retention_days=settings.audit_retention_days if audit_days is None else audit_days,
                organization_id=org,
                dry_run=dry_run,
            )

    report = run(main())

    def render() -> None:
        title = "audit retention" + (" (dry run)" if report.dry_run else "")
        table = Table(title=title)
        table.add_column("")
        table.add_column("value", justify="right")
        table.add_row("retention (days)", str(report.retention_days))
        verb = "to delete" if report.dry_run else "deleted"
        table.add_row(f"segments {verb}", f"{report.segments:,}")
        table.add_row(f"records {verb}", f"{report.records:,}")
        table.add_row(f"archive bytes {verb}", size_text(report.archive_bytes))
        table.add_row("set aside", str(len(report.set_aside)))
        console.print(table)
        for aside in report.set_aside:
            console.print(f"[yellow]set aside {aside.id}: {aside.reason}[/yellow]", highlight=False)

    emit({"audit": dataclasses.asdict(report)}, as_json=as_json, render=render)
    if report.set_aside:
        raise typer.Exit(ExitCode.PROBLEMS)
