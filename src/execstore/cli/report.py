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
    run,
    settings_for,
    size_text,
)
from execstore.report.live import live_report
from execstore.store import ExecStore

__all__ = ["storage_report"]


def storage_report(
    exact: Annotated[
        bool, typer.Option("--exact", help="Count rows exactly (slow on big tables).")
    ] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    blob_url: BlobOption = None,
) -> None:
    """Per table: rows, heap, TOAST and index bytes, bytes per row; partitions; archives."""
    settings = settings_for(url, blob_url)

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
