"""Where the bytes are: per-table rows, heap, TOAST and index bytes, measured not estimated.

PostgreSQL: ``pg_relation_size`` (heap), the TOAST relation with its index, and
``pg_indexes_size``; a partitioned table is the sum of its partitions
(``pg_partition_tree``), each listed with its bounds as the catalog states them. Rows are
counted exactly with ``exact=True``, else taken from the planner's statistics
(``reltuples``, what ``ANALYZE`` last saw).

SQLite: the ``dbstat`` virtual table's page bytes per table and per index (SQLite has no
TOAST: overflow pages count as heap); rows are always counted exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["PartitionSize", "TableSize", "measure_tables"]


@dataclass(frozen=True, slots=True)
class PartitionSize:
    """One partition of a partitioned table."""

    name: str
    bounds: str
    rows: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class TableSize:
    """One table's rows and bytes (heap + TOAST + indexes = total)."""

    name: str
    rows: int
    heap_bytes: int
    toast_bytes: int
    index_bytes: int
    partitions: list[PartitionSize] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        """Heap, TOAST and indexes together (``pg_total_relation_size``)."""
        return self.heap_bytes + self.toast_bytes + self.index_bytes

    @property
    def bytes_per_row(self) -> float | None:
        """Total bytes over rows (None for an empty table)."""
        return self.total_bytes / self.rows if self.rows else None

    def as_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "name": self.name,
            "rows": self.rows,
            "heap_bytes": self.heap_bytes,
            "toast_bytes": self.toast_bytes,
            "index_bytes": self.index_bytes,
            "total_bytes": self.total_bytes,
            "bytes_per_row": None if self.bytes_per_row is None else round(self.bytes_per_row, 1),
            "partitions": [
                {"name": p.name, "bounds": p.bounds, "rows": p.rows, "total_bytes": p.total_bytes}
                for p in self.partitions
            ],
        }


_PG_TABLES = """
SELECT c.oid::bigint AS oid, c.relname, c.relkind::text AS relkind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname <> 'alembic_version'
ORDER BY c.relname
"""

_PG_SIZES = """
SELECT c.relname AS name,
       coalesce(pg_get_expr(c.relpartbound, c.oid), '') AS bounds,
       pg_relation_size(c.oid) AS heap,
       coalesce(pg_total_relation_size(nullif(c.reltoastrelid, 0)), 0) AS toast,
       pg_indexes_size(c.oid) AS idx,
       greatest(c.reltuples, 0)::bigint AS est
FROM pg_class c
WHERE c.oid = ANY(CAST(:oids AS bigint[])::oid[])
ORDER BY c.relname
"""

# The leaves of a partitioned table (pg_partition_tree lists nothing for a plain table).
_PG_LEAVES = """
SELECT relid::oid::bigint FROM pg_partition_tree(CAST(CAST(:oid AS bigint) AS oid)::regclass)
WHERE isleaf
"""


async def measure_tables(conn: AsyncConnection, *, exact: bool = False) -> list[TableSize]:
    """Every table of the connected database (partitions folded into their parent)."""
    if conn.dialect.name == "postgresql":
        return await _postgres(conn, exact=exact)
    return await _sqlite(conn)


async def _count(conn: AsyncConnection, name: str) -> int:
    quoted = conn.dialect.identifier_preparer.quote(name)
    return int((await conn.exec_driver_sql(f"SELECT count(*) FROM {quoted}")).scalar_one())


async def _postgres(conn: AsyncConnection, *, exact: bool) -> list[TableSize]:
    sizes = []
    for oid, name, kind in (await conn.execute(sa.text(_PG_TABLES))).all():
        leaves = [int(oid)]
        if kind == "p":
            found = await conn.execute(sa.text(_PG_LEAVES), {"oid": int(oid)})
            leaves = [int(leaf) for leaf in found.scalars()]
        parts = (await conn.execute(sa.text(_PG_SIZES), {"oids": leaves})).all()
        rows_of = {}
        for part in parts:
            rows_of[part.name] = await _count(conn, part.name) if exact else int(part.est)
        partitions = (
            [
                PartitionSize(p.name, p.bounds, rows_of[p.name], int(p.heap + p.toast + p.idx))
                for p in parts
            ]
            if kind == "p"
            else []
        )
        # A partitioned parent's own (empty) indexes are catalog entries, not bytes.
        sizes.append(
            TableSize(
                name=name,
                rows=sum(rows_of.values()),
                heap_bytes=sum(int(p.heap) for p in parts),
                toast_bytes=sum(int(p.toast) for p in parts),
                index_bytes=sum(int(p.idx) for p in parts),
                partitions=partitions,
            )
        )
    return sizes


async def _sqlite(conn: AsyncConnection) -> list[TableSize]:
    tables = (
        (
            await conn.exec_driver_sql(
                "SELECT name FROM sqlite_schema WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' AND name <> 'alembic_version' ORDER BY name"
            )
        )
        .scalars()
        .all()
    )
    found = await conn.exec_driver_sql("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
    page_rows: list[Any] = list(found.all())
    pages: dict[str, int] = {str(row[0]): int(row[1] or 0) for row in page_rows}
    indexes: list[Any] = list(
        (
            await conn.exec_driver_sql(
                "SELECT tbl_name, name FROM sqlite_schema WHERE type = 'index'"
            )
        ).all()
    )
    index_bytes: dict[str, int] = {}
    for row in indexes:
        table = str(row[0])
        index_bytes[table] = index_bytes.get(table, 0) + pages.get(str(row[1]), 0)
    return [
        TableSize(
            name=name,
            rows=await _count(conn, name),
            heap_bytes=pages.get(name, 0),
            toast_bytes=0,
            index_bytes=index_bytes.get(name, 0),
        )
        for name in tables
    ]
