"""The storage report of a live database: where its bytes are, and what its blobs hold."""

from __future__ import annotations

import dataclasses
from typing import Any

from execstore.report.sizes import measure_tables

__all__ = ["live_report"]


async def live_report(store: Any, *, exact: bool = False) -> dict[str, Any]:
    """Tables (rows, heap, TOAST, index bytes, bytes per row, partitions), archives per kind
    (count, records, blob bytes) and the RAG switch-over state, as plain data."""
    async with store.engine.connect() as conn:
        tables = await measure_tables(conn, exact=exact)
    archives = {}
    async with store.sessions() as session:
        for kind in store.archive_kinds:
            archives[kind.name] = dataclasses.asdict(await kind.totals(session))
    return {
        "database": store.engine.dialect.name,
        "revision": store.revision,
        "tables": [table.as_dict() for table in tables],
        "database_bytes": sum(table.total_bytes for table in tables),
        "archives": archives,
        "blob_bytes": sum(a["stored_bytes"] for a in archives.values()),
        "rag": {
            "mode": store.settings.rag_mode.value,
            **(await store.rag_shadow_stats()).model_dump(),
        },
    }
