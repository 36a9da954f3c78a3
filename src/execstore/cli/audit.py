"""``execstore audit ...``: verify the PHI audit chains; write their checkpoints."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

import typer
from rich.table import Table

from execstore.audit import (
    CheckpointReport,
    DictionaryReport,
    VerifyReport,
    checkpoint_organizations,
    train_dictionaries,
    verify_audit,
)
from execstore.cli._common import (
    BlobOption,
    JsonOption,
    OrgOption,
    UrlOption,
    console,
    emit,
    err,
    progress,
    run,
    settings_for,
    summary_table,
)
from execstore.store import ExecStore

__all__ = ["app"]

app = typer.Typer(help="Verify the PHI audit log's hash chains; checkpoint their heads.")


def _since(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO date or time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@app.command("verify")
def verify_command(
    org: OrgOption = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Start at the last checkpoint before this ISO time (default: all)."
        ),
    ] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Recompute every chain against its checkpoints; exit 3 naming the first bad record."""
    start = _since(since)
    settings = settings_for(url, blob_url)

    async def main() -> VerifyReport:
        async with ExecStore.open(settings) as store:
            with progress("verifying", None) as advance:
                return await verify_audit(
                    store.sessions,
                    store.archives,
                    organization_id=org,
                    since=start,
                    on_progress=advance,
                )

    report = run(main())

    def render() -> None:
        table = Table(title="audit verification")
        for column in ("organization", "records", "archived", "seqs", "checkpoints", "result"):
            table.add_column(column, justify="left" if column == "organization" else "right")
        for o in report.organizations:
            seqs = f"{o.first_seq}..{o.last_seq}" if o.first_seq is not None else "-"
            result = "ok" if o.problem is None else f"[red]{o.problem.kind}[/red]"
            table.add_row(
                str(o.organization_id),
                f"{o.records:,}",
                f"{o.archived_records:,}",
                seqs,
                str(o.checkpoints_matched),
                result,
            )
        console.print(table)
        rate = report.records / report.seconds if report.seconds else 0.0
        console.print(f"{report.records:,} records in {report.seconds:.2f} s ({rate:,.0f}/s)")
        for problem in report.problems:
            console.print(
                f"[red]{problem.organization_id}: first bad record {problem.seq}: "
                f"{problem.message}[/red]",
                highlight=False,
            )

    data: dict[str, Any] = {
        "ok": report.ok,
        "records": report.records,
        "seconds": report.seconds,
        "organizations": [dataclasses.asdict(o) | {"ok": o.ok} for o in report.organizations],
    }
    emit(data, as_json=as_json, render=render, problems=not report.ok)


@app.command("checkpoint")
def checkpoint_command(
    org: OrgOption = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Write a checkpoint of every chain head that moved, and train dictionaries due.

    Schedule it at least daily (hourly narrows the window in which the newest records
    are protected by their links alone).
    """
    settings = settings_for(url, blob_url)

    async def main() -> tuple[CheckpointReport, DictionaryReport]:
        async with ExecStore.open(settings) as store:
            trained = await train_dictionaries(
                store.sessions, organization_id=org, clock=store.clock
            )
            with progress("checkpointing", None) as advance:
                written = await checkpoint_organizations(
                    store.sessions,
                    store.archives,
                    organization_id=org,
                    on_progress=advance,
                    clock=store.clock,
                )
            return written, trained

    written, trained = run(main())

    def render() -> None:
        table = summary_table("audit checkpoints")
        table.add_row("checkpoints written", str(len(written.written)))
        table.add_row("chains already checkpointed", str(written.up_to_date))
        table.add_row("dictionaries trained", str(len(trained.trained)))
        console.print(table)
        for key in written.written:
            err.print(key, highlight=False)

    emit(
        {
            "written": written.written,
            "up_to_date": written.up_to_date,
            "dictionaries": [
                {"organization_id": str(o), "version": v, "samples": n, "bytes": b}
                for o, v, n, b in trained.trained
            ],
        },
        as_json=as_json,
        render=render,
    )
