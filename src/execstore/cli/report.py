"""``execstore storage-report``: where the bytes are, measured on a live database."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from execstore.cli._common import (
    BlobOption,
    JsonOption,
    UrlOption,
    console,
    emit,
    err,
    run,
    settings_for,
    size_text,
)
from execstore.report.analysis import DEFAULT_PRICES, analyse
from execstore.report.live import live_report
from execstore.report.simulate import simulate as run_simulation
from execstore.store import ExecStore

__all__ = ["storage_report"]


def storage_report(
    exact: Annotated[
        bool, typer.Option("--exact", help="Count rows exactly (slow on big tables).")
    ] = False,
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Generate a synthetic month into a fresh legacy and a fresh optimized "
            "database on the --url server and compare them.",
        ),
    ] = False,
    jobs: Annotated[int, typer.Option("--jobs", min=10, help="Jobs to simulate.")] = 500,
    jobs_per_month: Annotated[
        int, typer.Option("--jobs-per-month", min=1, help="Projection scale.")
    ] = 50_000,
    db_price: Annotated[
        float, typer.Option("--db-price-gb", min=0, help="Database storage, USD per GB-month.")
    ] = DEFAULT_PRICES["database_gb_month"],
    blob_price: Annotated[
        float, typer.Option("--blob-price-gb", min=0, help="Blob storage, USD per GB-month.")
    ] = DEFAULT_PRICES["blob_gb_month"],
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the simulated databases (PostgreSQL).")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Per table: rows, heap, TOAST and index bytes, bytes per row; partitions; archives.

    With --simulate: a synthetic month at the plan's volumes, the legacy way and
    execstore's way, and the plan's success metrics measured.
    """
    settings = settings_for(url, blob_url)
    if simulate:
        prices = {"database_gb_month": db_price, "blob_gb_month": blob_price}

        async def simulated() -> dict[str, Any]:
            result = await run_simulation(
                settings.database_url,
                jobs=jobs,
                jobs_per_month=jobs_per_month,
                keep=keep,
                on_step=lambda text: err.print(f"[dim]{text}[/dim]"),
            )
            return analyse(result, prices=prices)

        outcome = run(simulated())
        emit(outcome, as_json=as_json, render=lambda: _render_simulation(outcome))
        return

    async def main() -> dict[str, Any]:
        async with ExecStore.open(settings) as store:
            return await live_report(store, exact=exact)

    report = run(main())
    emit(report, as_json=as_json, render=lambda: _render_live(report))


def _render_live(report: dict[str, Any]) -> None:
    table = Table(title=f"tables ({report['database']}, revision {report['revision']})")
    for name in ("table", "rows", "heap", "TOAST", "indexes", "total", "B/row"):
        table.add_column(name, justify="left" if name == "table" else "right", no_wrap=True)
    for row in report["tables"]:
        per_row = row["bytes_per_row"]
        table.add_row(
            row["name"],
            f"{row['rows']:,}",
            size_text(row["heap_bytes"]),
            size_text(row["toast_bytes"]),
            size_text(row["index_bytes"]),
            size_text(row["total_bytes"]),
            "-" if per_row is None else f"{per_row:,.0f}",
        )
    table.add_row("all tables", "", "", "", "", size_text(report["database_bytes"]), "")
    console.print(table)
    for row in report["tables"]:
        if row["partitions"]:
            parts = Table(title=f"partitions of {row['name']}")
            for name in ("partition", "bounds", "rows", "total"):
                parts.add_column(name, justify="right" if name in ("rows", "total") else "left")
            for part in row["partitions"]:
                parts.add_row(
                    part["name"],
                    part["bounds"],
                    f"{part['rows']:,}",
                    size_text(part["total_bytes"]),
                )
            console.print(parts)
    archives = Table(title="archives (blob storage)")
    for name in ("kind", "blobs", "records", "stored", "raw"):
        archives.add_column(name, justify="left" if name == "kind" else "right")
    for kind, totals in report["archives"].items():
        archives.add_row(
            kind,
            f"{totals['archives']:,}",
            f"{totals['records']:,}",
            size_text(totals["stored_bytes"]),
            size_text(totals["raw_bytes"]),
        )
    console.print(archives)
    rag = report["rag"]
    console.print(
        f"RAG mode [bold]{rag['mode']}[/bold]: {rag['compared']:,} shadow reads compared, "
        f"{rag['mismatches']:,} mismatches, {rag['failures']:,} failed"
    )


def _gb(count: float | None) -> str:
    return "-" if count is None else f"{count / 1e9:,.2f} GB"


def _b(count: float | None) -> str:
    return "-" if count is None else f"{count:,.0f} B"


def _render_simulation(report: dict[str, Any]) -> None:
    jobs, month = report["jobs_simulated"], report["jobs_per_month"]
    per_table = Table(title=f"bytes per record, {jobs:,} simulated jobs (indexes included)")
    for name in ("side", "table", "rows", "B/row", "B/job"):
        per_table.add_column(name, justify="left" if name in ("side", "table") else "right")
    for row in report["tables"]:
        per_table.add_row(
            row["side"],
            row["table"],
            f"{row['rows']:,}",
            f"{row['bytes_per_row']:,.0f}",
            f"{row['bytes_per_job']:,.0f}",
        )
    console.print(per_table)

    groups = Table(title="bytes per job by record kind (database, kept for good)")
    for name in ("kind", "legacy", "optimized"):
        groups.add_column(name, justify="left" if name == "kind" else "right")
    kinds = list(
        dict.fromkeys([*report["bytes_per_job"]["legacy"], *report["bytes_per_job"]["optimized"]])
    )
    for kind in kinds:
        groups.add_row(
            kind,
            _b(report["bytes_per_job"]["legacy"].get(kind)),
            _b(report["bytes_per_job"]["optimized"].get(kind)),
        )
    console.print(groups)

    growth = Table(title=f"projected monthly growth at {month:,} jobs a month")
    growth.add_column("")
    growth.add_column("legacy", justify="right")
    growth.add_column("optimized", justify="right")
    growth.add_row(
        "database growth",
        _gb(report["legacy_monthly_growth_bytes"]),
        _gb(report["optimized_monthly_growth_bytes"]),
    )
    growth.add_row(
        "hot footprint (constant)",
        "-",
        ", ".join(f"{k} {_gb(v)}" for k, v in report["hot_footprint"].items()),
    )
    growth.add_row("blob growth", "-", _gb(report["blob_growth_bytes"]))
    cost = report["monthly_cost_usd"]
    growth.add_row(
        "storage cost added per month",
        f"${cost['legacy_database']:,.2f}",
        f"${cost['optimized_database']:,.2f} + ${cost['optimized_blob']:,.2f} blob",
    )
    growth.add_row("growth reduction", "", f"[bold]{report['monthly_growth_reduction']:.1%}[/bold]")
    console.print(growth)

    metrics = Table(title="the plan's success metrics")
    for name in ("metric", "before", "target", "measured", "reduction"):
        metrics.add_column(name, justify="left" if name in ("metric", "target") else "right")
    for row in report["success_metrics"]:
        before, measured = row["before"], row["measured"]
        is_growth = row["metric"].startswith("Monthly")
        show = _gb if is_growth else _b
        reduction = row.get("reduction")
        metrics.add_row(
            row["metric"],
            before if isinstance(before, str) else show(before),
            row["target"],
            measured if isinstance(measured, str) else show(measured),
            "" if reduction is None else f"{reduction:.1%}",
        )
    console.print(metrics)
