"""``execstore maintain``: the periodic housekeeping every deployment schedules.

Each step is one entry of :data:`STEPS`; a step gets the opened store and returns its
summary. Steps are safe to run from several schedulers at once (each takes its own
advisory lock on PostgreSQL) and safe to repeat.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.table import Table

from execstore.cli._common import (
    BlobOption,
    ExitCode,
    JsonOption,
    UrlOption,
    console,
    emit,
    run,
    settings_for,
)
from execstore.logs.maintenance import maintain_log_partitions
from execstore.store import ExecStore

__all__ = ["STEPS", "StepResult", "maintain"]


@dataclass
class StepResult:
    """What one maintenance step did, for the table and ``--json``."""

    name: str
    summary: dict[str, Any] = field(default_factory=dict)
    problems: bool = False


async def _log_partitions(store: ExecStore) -> StepResult:
    settings = store.settings
    report = await maintain_log_partitions(
        store.engine, mode=settings.log_partition_mode, months_ahead=settings.log_months_ahead
    )
    return StepResult("log partitions", dataclasses.asdict(report))


STEPS: list[Callable[[ExecStore], Awaitable[StepResult]]] = [_log_partitions]
"""The maintenance steps, in order."""


def maintain(
    as_json: JsonOption = False, url: UrlOption = None, blob_url: BlobOption = None
) -> None:
    """Run every maintenance step (log partitions ahead, ...); exit 3 if a step found problems."""
    settings = settings_for(url, blob_url)

    async def main() -> list[StepResult]:
        async with ExecStore.open(settings) as store:
            return [await step(store) for step in STEPS]

    results = run(main())

    def render() -> None:
        table = Table(title="maintenance")
        table.add_column("step")
        table.add_column("result")
        for result in results:
            shown = {k: v for k, v in result.summary.items() if v not in (None, [], 0, False)}
            table.add_row(result.name, ", ".join(f"{k}: {v}" for k, v in shown.items()) or "-")
        console.print(table)

    emit({"steps": [dataclasses.asdict(r) for r in results]}, as_json=as_json, render=render)
    if any(result.problems for result in results):
        raise typer.Exit(ExitCode.PROBLEMS)
