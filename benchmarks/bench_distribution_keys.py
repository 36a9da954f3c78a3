"""Benchmark: what distributing by organization instead of by job would cost the hot rows.

Citus requires a distributed table's primary key and unique constraints to include its
distribution column, and foreign keys between distributed tables to go through it.
execstore distributes job-keyed tables by job (``execstore.schema.distribution``): every
such row already carries ``job_id``, so that costs nothing. The alternative — everything by
``organization_id`` — would add the organization to rows that do not carry it and to keys
that do not include it. This measures both layouts side by side on PostgreSQL with the
same rows (``pg_total_relation_size`` after VACUUM ANALYZE):

- log lines (the hottest table): ``job_id`` index vs an added ``organization_id`` column
  and a ``(organization_id, job_id)`` index;
- screenshot rows: the same;
- a per-job row keyed ``job_id`` (metadata, RAG context, result pointer) vs keyed
  ``(organization_id, job_id)``.

Prints a table, then one JSON object as the last line (bytes per row, both layouts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import asyncpg
from rich.console import Console
from rich.table import Table

from support.postgres import create_database, drop_database, find_server

LAYOUTS = {
    "log lines": (
        "CREATE TABLE {t} (id bigint, ts timestamptz, job_id uuid{org}, step int, "
        "level smallint, message text, metadata json)",
        "CREATE INDEX ON {t} ({key})",
        "job_id",
        "organization_id, job_id",
    ),
    "screenshots": (
        "CREATE TABLE {t} (captured_at timestamptz, job_id uuid{org}, ordinal smallint, "
        "step smallint, width smallint, height smallint, key_suffix text)",
        "CREATE INDEX ON {t} ({key})",
        "job_id",
        "organization_id, job_id",
    ),
    "per-job row (primary key)": (
        "CREATE TABLE {t} (created_at timestamptz, job_id uuid, organization_id uuid, "
        "workflow_id uuid, status smallint, total smallint, done smallint{org_unused})",
        "ALTER TABLE {t} ADD PRIMARY KEY ({key})",
        "job_id",
        "organization_id, job_id",
    ),
}


async def measure(conn: asyncpg.Connection, rows: int) -> dict[str, Any]:
    rng = random.Random(5)
    orgs = [uuid.uuid4() for _ in range(50)]
    jobs = [(uuid.uuid4(), rng.choice(orgs)) for _ in range(max(1, rows // 60))]
    found: dict[str, Any] = {}
    for name, (create, index, by_job, by_org) in LAYOUTS.items():
        sizes = {}
        for layout, key in (("by_job", by_job), ("by_organization", by_org)):
            table = f"t_{abs(hash((name, layout)))}"
            with_org = layout == "by_organization" and "org_unused" not in create
            await conn.execute(
                create.format(
                    t=table, org=", organization_id uuid" if with_org else "", org_unused=""
                )
            )
            await conn.execute(index.format(t=table, key=key))
            count = rows if name != "per-job row (primary key)" else len(jobs)
            records = []
            for n in range(count):
                job, org = jobs[n % len(jobs)] if name != "per-job row (primary key)" else jobs[n]
                if name == "log lines":
                    values = [
                        n,
                        None,
                        job,
                        *([org] if with_org else []),
                        n % 12,
                        20,
                        "x" * rng.randint(80, 300),
                        None,
                    ]
                elif name == "screenshots":
                    values = [
                        None,
                        job,
                        *([org] if with_org else []),
                        n % 10,
                        n % 12,
                        1920,
                        1080,
                        f"step-{n % 12:02d}.png",
                    ]
                else:
                    values = [None, job, org, org, 3, 10, 10]
                records.append(tuple(values))
            await conn.copy_records_to_table(table, records=records)
            await conn.execute(f"VACUUM ANALYZE {table}")
            total = await conn.fetchval(f"SELECT pg_total_relation_size('{table}')")
            sizes[layout] = round(total / count, 1)
        sizes["extra_bytes_per_row"] = round(sizes["by_organization"] - sizes["by_job"], 1)
        found[name] = sizes
    return found


async def main(rows: int) -> dict[str, Any]:
    with find_server() as server:
        name = await create_database(server, prefix="bench_keys")
        try:
            conn = await asyncpg.connect(server.dsn(name))
            try:
                return await measure(conn, rows)
            finally:
                await conn.close()
        finally:
            await drop_database(server, name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="log lines (default 200,000)")
    args = parser.parse_args()
    result = asyncio.run(main(args.rows))
    table = Table(title="bytes per row, indexes included")
    for column in ("table", "by job (chosen)", "by organization", "extra"):
        table.add_column(column, justify="left" if column == "table" else "right")
    for name, sizes in result.items():
        table.add_row(
            name,
            f"{sizes['by_job']:,}",
            f"{sizes['by_organization']:,}",
            f"{sizes['extra_bytes_per_row']:+,}",
        )
    Console().print(table)
    print(json.dumps({"rows": args.rows, **result}))
