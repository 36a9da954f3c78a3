"""Every batch command is built here: shared options, one table, ``--json``, exit codes.

A batch command (``archive``, ``backfill``, ``retention run``, ``audit verify`` and
``checkpoint``, ``archive reconcile``) parses its own options, then hands
:func:`run_batch` a job: a coroutine taking the opened store and the progress callback
and returning one :class:`~execstore.operations.BatchReport` or several. ``run_batch``
shows a progress bar on stderr, prints each report as a table of its counts and details
and its set-aside rows with their reasons (or, with ``--json``, one JSON object as the
last line of stdout: ``{"needs_attention": ..., "reports": [...]}``), and exits 3 when
any report needs attention, 1 on an error, 0 otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

import typer
from rich.table import Table

from execstore.cli._common import (
    ExitCode,
    StopRequest,
    console,
    progress,
    run,
    settings_for,
    size_text,
    summary_table,
)
from execstore.operations import BatchReport, Progress
from execstore.store import ExecStore

__all__ = ["BatchSizeOption", "LimitOption", "run_batch", "show_reports"]

BatchSizeOption = Annotated[int, typer.Option("--batch-size", min=1, help="Rows per commit.")]
LimitOption = Annotated[
    int | None, typer.Option("--limit", min=1, help="Stop after this many rows.")
]
Job = Callable[[ExecStore, Progress], Awaitable[BatchReport | Sequence[BatchReport]]]
SET_ASIDE_SHOWN = 20
_LIST_SHOWN = 5


def run_batch(
    job: Job,
    *,
    activity: str,
    as_json: bool,
    url: str | None,
    blob_url: str | None,
) -> list[BatchReport]:
    """Run ``job`` on the store the settings (and ``--url``/``--blob-url``) name; show its
    reports; exit 3 if any needs attention (the reports, when it returns)."""
    settings = settings_for(url, blob_url)
    stop = StopRequest(graceful=True)

    async def main() -> list[BatchReport]:
        async with ExecStore.open(settings) as store:
            with progress(activity, None) as advance:

                def on_progress(done: int, total: int | None = None) -> None:
                    advance(done, total)
                    stop.done = done
                    stop.check()  # between batches: a signal ends the run here

                found = await job(store, on_progress)
        return [found] if isinstance(found, BatchReport) else list(found)

    reports = run(main(), stop=stop)
    show_reports(reports, as_json=as_json)
    return reports


def show_reports(reports: Sequence[BatchReport], *, as_json: bool) -> None:
    """Print ``reports`` (tables, or one JSON line); exit 3 if any needs attention."""
    attention = any(report.needs_attention for report in reports)
    if as_json:
        data = {"needs_attention": attention, "reports": [r.as_dict() for r in reports]}
        console.print_json(json.dumps(data, default=str), indent=None)
    elif len(reports) > 1 and len({tuple(r.counts) for r in reports}) == 1:
        _side_by_side(reports)
    else:
        for report in reports:
            _table(report)
    if not as_json:
        for report in reports:
            _set_aside(report)
    if attention:
        raise typer.Exit(ExitCode.PROBLEMS)


def _label(name: str) -> str:
    return name.replace("_", " ")


def _figure(name: str, value: int) -> str:
    return size_text(value) if name.endswith("bytes") else f"{value:,}"


def _detail(value: Any) -> str | None:
    """A detail as one cell, or None when it is too rich for a table (see --json)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, str | int):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        shown = ", ".join(str(v) for v in value[:_LIST_SHOWN]) or "-"
        more = len(value) - _LIST_SHOWN
        return shown + (f" … {more:,} more (see --json)" if more > 0 else "")
    return None


def _table(report: BatchReport) -> None:
    title = report.job + (" (dry run)" if report.dry_run else "")
    table = summary_table(title)
    table.min_width = len(title) + 4  # a title wraps at the table's width
    for name, value in report.counts.items():
        table.add_row(_label(name), _figure(name, value))
    for name, value in report.details.items():
        cell = _detail(value)
        table.add_row(_label(name), f"{len(value):,} (see --json)" if cell is None else cell)
    table.add_row("set aside", f"{len(report.set_aside):,}")
    console.print(table)


def _side_by_side(reports: Sequence[BatchReport]) -> None:
    table = Table(title=", ".join(r.job for r in reports))
    table.add_column("")
    for report in reports:
        table.add_column(report.job, justify="right")
    for name in reports[0].counts:
        table.add_row(_label(name), *(_figure(name, r.counts[name]) for r in reports))
    table.add_row("set aside", *(f"{len(r.set_aside):,}" for r in reports))
    console.print(table)
    for report in reports:  # what the figures count, where it is short enough to list
        for name, value in report.details.items():
            if isinstance(value, list) and value and (cell := _detail(value)) is not None:
                console.print(f"{report.job}: {_label(name)}: {cell}", markup=False)


def _set_aside(report: BatchReport) -> None:
    """The rows ``report`` set aside, with their reasons (the first 20; all in --json)."""
    rows = report.set_aside
    if not rows:
        return
    table = Table(title=f"{report.job}: set aside (left as they are; retried on the next run)")
    table.add_column("key")
    table.add_column("reason")
    for row in rows[:SET_ASIDE_SHOWN]:
        table.add_row(row.key, row.reason)
    if len(rows) > SET_ASIDE_SHOWN:
        table.add_row("…", f"{len(rows) - SET_ASIDE_SHOWN:,} more (see --json)")
    console.print(table)
