"""``execstore retention ...``: delete what is past its retention, never what must be kept.

``run`` applies the one retention API (:func:`execstore.operations.apply_retention`) to
logs and audit: archived log chunks older than their organization's log retention
(blob first, then pointer row), and archived audit segments older than the audit
retention, which is never below six years. ``set`` and ``show`` manage an
organization's log retention.
"""

from __future__ import annotations

import enum
import uuid
from typing import Annotated

import typer

from execstore.cli._common import (
    BlobOption,
    DryRunOption,
    JsonOption,
    OrgOption,
    UrlOption,
    console,
    emit,
    run,
    settings_for,
)
from execstore.cli.batch import run_batch
from execstore.logs import LogRetention
from execstore.operations import BatchReport, Progress, RetentionKind
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
    kinds = list(RetentionKind) if kind is Kind.ALL else [RetentionKind(kind.value)]

    async def job(store: ExecStore, on_progress: Progress) -> list[BatchReport]:
        days = {RetentionKind.AUDIT: audit_days}
        return [
            await store.apply_retention(
                which,
                days=days.get(which),
                organization_id=org,
                dry_run=dry_run,
                on_progress=on_progress,
            )
            for which in kinds
        ]

    activity = "measuring" if dry_run else "deleting"
    run_batch(job, activity=activity, as_json=as_json, url=url, blob_url=blob_url)


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
