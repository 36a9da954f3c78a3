"""``execstore maintain``: the housekeeping a scheduler runs every few minutes.

Maintenance is a list of steps (:data:`STEPS`), each independent: one that fails is
reported and the others still run (exit 1 if any failed). Every step is safe to run
from several schedulers at once: on PostgreSQL each takes its own transaction-scoped
advisory lock and a second caller reports the step as ``skipped`` instead of waiting.

Steps:

- ``partitions``: create the log table's monthly partitions ahead (``EXECSTORE_LOG_MONTHS_AHEAD``),
  natively or through pg_partman (``EXECSTORE_LOG_PARTITION_MODE``). SQLite has none.
- ``summaries``: recompute the dashboard summary groups written since the last run
  (``--rebuild-summaries``: every group). SQLite has nothing to refresh.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

import typer
from rich.table import Table

from execstore.cli._common import (
    BlobOption,
    ExitCode,
    JsonOption,
    UrlOption,
    console,
    emit,
    err,
    run,
    settings_for,
)
from execstore.errors import ExecstoreError
from execstore.logs.maintenance import maintain_log_partitions
from execstore.metadata import refresh_summaries
from execstore.store import ExecStore

__all__ = ["STEPS", "MaintenanceOptions", "StepResult", "maintain_command"]


@dataclass(frozen=True, slots=True)
class MaintenanceOptions:
    """What the command line asked of the steps."""

    rebuild_summaries: bool = False


@dataclass(slots=True)
class StepResult:
    """How one maintenance step went."""

    name: str
    status: str = "done"
    """``done``, ``skipped`` (another scheduler holds it, or nothing to do) or ``failed``."""
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


async def create_log_partitions(store: ExecStore, options: MaintenanceOptions) -> StepResult:
    """Log partitions for this month and the months ahead (an advisory lock serializes runs)."""
    del options
    settings = store.settings
    report = await maintain_log_partitions(
        store.engine,
        mode=settings.log_partition_mode,
        months_ahead=settings.log_months_ahead,
        clock=store.clock,
    )
    if report.details["skipped"]:
        return StepResult("partitions", "skipped", details={"reason": report.details["skipped"]})
    return StepResult("partitions", details=report.counts | report.details)


async def refresh_execution_summaries(store: ExecStore, options: MaintenanceOptions) -> StepResult:
    """Recompute stale dashboard summaries (one refresh at a time across schedulers)."""
    async with store.sessions() as session, session.begin():
        report = await refresh_summaries(session, full=options.rebuild_summaries, clock=store.clock)
    details: dict[str, Any] = {"groups": report.groups, "full": report.full}
    if report.skipped:
        return StepResult("summaries", "skipped", details={"reason": report.reason})
    details |= {"rows_written": report.rows_written, "rows_removed": report.rows_removed}
    return StepResult("summaries", details=details)


Step = Callable[[ExecStore, MaintenanceOptions], Awaitable[StepResult]]
STEPS: list[tuple[str, Step]] = [
    ("partitions", create_log_partitions),
    ("summaries", refresh_execution_summaries),
]
"""Every maintenance step, in the order they run."""


async def run_steps(
    store: ExecStore, options: MaintenanceOptions, only: set[str] | None = None
) -> list[StepResult]:
    """Run the steps (all, or those named in ``only``); a failing one does not stop the rest."""
    results = []
    for name, step in STEPS:
        if only and name not in only:
            continue
        started = time.perf_counter()
        try:
            result = await step(store, options)
        except ExecstoreError as exc:
            result = StepResult(name, "failed", details={"error": str(exc)})
        result.seconds = round(time.perf_counter() - started, 3)
        results.append(result)
    return results


def maintain_command(
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only", help="Run only this step (repeatable): " + ", ".join(n for n, _ in STEPS)
        ),
    ] = None,
    rebuild_summaries: Annotated[
        bool, typer.Option("--rebuild-summaries", help="Recompute every summary group.")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Periodic housekeeping (log partitions, summaries); safe from several schedulers at once."""
    known = {name for name, _ in STEPS}
    unknown = set(only or []) - known
    if unknown:
        err.print(f"[red]error:[/red] unknown step(s): {', '.join(sorted(unknown))}")
        raise typer.Exit(ExitCode.USAGE)
    settings = settings_for(url, blob_url)
    options = MaintenanceOptions(rebuild_summaries=rebuild_summaries)

    async def main() -> list[StepResult]:
        async with ExecStore.open(settings) as store:
            return await run_steps(store, options, set(only or []) or None)

    results = run(main())

    def render() -> None:
        table = Table(title="maintenance")
        for column in ("step", "status", "seconds", "details"):
            table.add_column(column)
        for result in results:
            details = ", ".join(f"{k}={v}" for k, v in result.details.items())
            table.add_row(result.name, result.status, f"{result.seconds:.3f}", details)
        console.print(table)

    emit({"steps": [asdict(r) for r in results]}, as_json=as_json, render=render)
    if any(result.status == "failed" for result in results):
        raise typer.Exit(ExitCode.FAILED)
