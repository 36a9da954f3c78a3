"""``execstore audit ...``: verify the PHI audit chains; write their checkpoints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from execstore.audit import checkpoint_organizations, train_dictionaries, verify_audit
from execstore.cli._common import BlobOption, JsonOption, OrgOption, UrlOption
from execstore.cli.batch import run_batch
from execstore.operations import BatchReport, Progress
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

    async def job(store: ExecStore, on_progress: Progress) -> BatchReport:
        return await verify_audit(
            store.sessions,
            store.archives,
            organization_id=org,
            since=start,
            on_progress=on_progress,
        )

    run_batch(job, activity="verifying", as_json=as_json, url=url, blob_url=blob_url)


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

    async def job(store: ExecStore, on_progress: Progress) -> list[BatchReport]:
        trained = await train_dictionaries(store.sessions, organization_id=org, clock=store.clock)
        written = await checkpoint_organizations(
            store.sessions,
            store.archives,
            organization_id=org,
            on_progress=on_progress,
            clock=store.clock,
        )
        return [written, trained]

    run_batch(job, activity="checkpointing", as_json=as_json, url=url, blob_url=blob_url)
