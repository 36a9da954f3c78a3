"""``execstore retention ...``: delete what is past its retention, never what must be kept.

``run`` applies both retentions: archived log chunks older than their organization's log
retention (blob first, then pointer row), and archived audit segments older than the audit
retention, which is never below six years. ``set`` and ``show`` manage an organization's
log retention.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from typing import Annotated, Any

import typer

from execstore.audit import AuditRetentionReport, apply_audit_retention
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
    size_text,
    summary_table,
)
from execstore.logs import LogRetention
from execstore.logs.retention import LogRetentionReport, run_retention
from execstore.store import ExecStore

__all__ = ["app"]

app = typer.Typer(help="Delete archives past their retention; set or show a log retention.")

RequiredOrg = Annotated[uuid.UUID, typer.Option("--org", help="The organization.")]


class Kind(enum.StrEnum):
    """What retention applies to."""

    ALL = "all"
    LOGS = "logs"
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
    """Delete archives past retention (exit 3 when some were set aside)."""
    settings = settings_for(url, blob_url)

    async def main() -> tuple[LogRetentionReport | None, AuditRetentionReport | None]:
        logs = audit = None
        async with ExecStore.open(settings) as store:
            if kind in (Kind.ALL, Kind.LOGS):
                with progress(
                    "log chunks " + ("measured" if dry_run else "deleted"), None
                ) as advance:
                    logs = await run_retention(
                        store.sessions,
                        store.archives,
                        default_days=settings.log_retention_days,
                        hot_days=settings.log_hot_days,
                        dry_run=dry_run,
                        organization_id=org,
                        on_progress=lambda r: advance(r.chunks_deleted),
                        clock=store.clock,
                    )
            if kind in (Kind.ALL, Kind.AUDIT):
                audit = await apply_audit_retention(
                    store.sessions,
                    store.archives,
                    retention_days=settings.audit_retention_days
                    if audit_days is None
                    else audit_days,
                    organization_id=org,
                    dry_run=dry_run,
                    clock=store.clock,
                )
        return logs, audit

    logs, audit = run(main())
    verb = "to delete" if dry_run else "deleted"

    def render() -> None:
        table = summary_table("retention" + (" (dry run)" if dry_run else ""))
        if logs is not None:
            table.add_row("log organizations", f"{logs.organizations:,}")
            table.add_row(f"log chunks {verb}", f"{logs.chunks_deleted:,}")
            table.add_row(f"log lines {verb}", f"{logs.lines_deleted:,}")
            table.add_row(f"log blob bytes {verb}", size_text(logs.bytes_deleted))
        if audit is not None:
            table.add_row("audit retention (days)", str(audit.retention_days))
            table.add_row(f"audit segments {verb}", f"{audit.segments:,}")
            table.add_row(f"audit records {verb}", f"{audit.records:,}")
            table.add_row(f"audit archive bytes {verb}", size_text(audit.archive_bytes))
        aside = (logs.set_aside if logs else []) + (audit.set_aside if audit else [])
        table.add_row("set aside", f"{len(aside):,}")
        console.print(table)
        show_set_aside(aside)

    data: dict[str, Any] = {
        "logs": None if logs is None else dataclasses.asdict(logs),
        "audit": None if audit is None else dataclasses.asdict(audit),
    }
    emit(
        data,
        as_json=as_json,
        render=render,
        problems=bool(
            (logs is not None and logs.problems) or (audit is not None and audit.set_aside)
        ),
    )


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
    blob_url: BlobOption = None,
) -> None:
    """Set an organization's log retention (refused below the hot window)."""
    if (days is None) == (not reset):
        raise typer.BadParameter("give either --days N or --reset")
    settings = settings_for(url, blob_url)

    async def main() -> LogRetention:
        async with ExecStore.open(settings) as store, store.unit(org) as uow:
            return await uow.logs.set_retention(None if reset else days)

    _show(run(main()), as_json)


@app.command("show")
def show_command(
    org: RequiredOrg,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Show an organization's log retention."""
    settings = settings_for(url, blob_url)

    async def main() -> LogRetention:
        async with ExecStore.open(settings) as store, store.unit(org) as uow:
            return await uow.logs.retention()

    _show(run(main()), as_json)
