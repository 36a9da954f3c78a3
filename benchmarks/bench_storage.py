"""Benchmark: the plan's success metrics, from the storage report's simulated month.

Run: ``python benchmarks/bench_storage.py [--jobs 500]`` (PostgreSQL on 127.0.0.1:5432 or
``EXECSTORE_TEST_DATABASE_URL``). It is ``execstore storage-report --simulate``: a
synthetic month at the plan's per-job volumes written the legacy way and through
execstore's API into two fresh databases, archival run as at steady state, every table
measured with ``pg_total_relation_size`` and projected to 50,000 jobs a month.

Figures: ``monthly_growth_reduction`` (1 - optimized database growth / legacy database
growth; target >= 0.60, goal >= 0.95), both monthly growths, the hot footprint of the
tables with a hot window, blob growth, and the plan's per-record sizes before and after.

Prints a table, then as the last line one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from rich.console import Console
from rich.table import Table

from execstore.report.analysis import analyse
from execstore.report.simulate import simulate
from support.postgres import find_server

GB = 1e9


async def run(jobs: int) -> dict[str, Any]:
    with find_server() as server:
        report = analyse(
            await simulate(
                server.url("postgres"),
                jobs=jobs,
                on_step=lambda text: print(text, file=sys.stderr, flush=True),
            )
        )
    out: dict[str, Any] = {
        "jobs_simulated": jobs,
        "monthly_growth_reduction": report["monthly_growth_reduction"],
        "legacy_monthly_growth_gb": report["legacy_monthly_growth_bytes"] / GB,
        "optimized_monthly_growth_gb": report["optimized_monthly_growth_bytes"] / GB,
        "hot_footprint_gb": report["hot_footprint_bytes"] / GB,
        "blob_growth_gb": report["blob_growth_bytes"] / GB,
    }
    for metric in report["success_metrics"]:
        key = metric["metric"].lower().replace(" ", "_").replace(".", "_")
        out[f"{key}.before"] = metric["before"]
        out[f"{key}.measured"] = metric["measured"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    result = asyncio.run(run(args.jobs))
    table = Table(title=f"a simulated month ({args.jobs} jobs, projected to 50,000)")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:,.4g}" if isinstance(value, float) else str(value))
    Console(stderr=True).print(table)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
