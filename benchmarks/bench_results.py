"""Benchmark: job result storage, legacy vs optimized, on PostgreSQL and Azurite.

Run: ``python benchmarks/bench_results.py [--jobs N]`` (PostgreSQL on 127.0.0.1:5432; it
creates and drops its own databases and starts its own Azurite). The same generated
outputs (10-50 KB of JSON, 5-50 screenshots each) are stored twice:

- legacy: a database at revision ``legacy_baseline``; the whole output in ``jobs.result``
  and one ``execution_screenshots`` row per screenshot with its full URL;
- optimized: head, through ``ResultRepository.save`` (summary + key-suffix rows + blob).

Sizes are measured after VACUUM ANALYZE with ``pg_column_size``/``pg_total_relation_size``
(heap + TOAST + indexes). ``result_bytes_per_job`` counts, for legacy, the result column
only (screenshots were inside the JSON; its screenshot table is reported per row but not
added, which flatters legacy), and for optimized the summary column, the screenshot rows
and the archive row.

Two more measurements use the optimized database afterwards:

- ``archive_row_bytes``: the ``job_result_archives`` pointer row with its index at a
  realistic volume (a month at the plan's scale, 50,000 jobs: the saved rows plus rows
  inserted in SQL for jobs with random ids, as in production), against
  ``archive_row_bytes_stored_key``, the same rows in the previous layout that stored the
  blob key (unique index), bigint sizes and a record count;
- the cost of storing non-conforming screenshot URLs whole: the benchmark's screenshot
  rows copied into a table like ``execution_screenshots`` with one URL in ten replaced by
  a ~420-character Azure user-delegation SAS URL on another container
  (``screenshot_bytes_per_row_sas10``), and with every URL whole, as without
  ``EXECSTORE_SCREENSHOT_BASE_URL`` (``screenshot_bytes_per_row_whole``).

Prints a table, then as the last line one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import asyncpg
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import create_async_engine

from execstore.config import load_settings
from execstore.migrations.runner import migrate
from execstore.results import ResultRepository, ScreenshotUrls
from execstore.schema import legacy
from execstore.schema import models as m
from execstore.store import ExecStore
from support.azurite import start_azurite
from support.postgres import PgServer, create_database, drop_database

BASE = "https://claimautoprod.blob.core.windows.net/screenshots/"
PAYERS = ["Aetna", "Cigna", "UnitedHealthcare", "Humana", "Anthem BCBS", "Kaiser", "Medicare"]
ACTIONS = ["navigate", "click", "type", "select", "extract", "wait_for", "screenshot"]
STATUSES = ["approved", "pending", "denied", "needs_review", "paid", "in_process"]
WORDS = (  # noqa: SIM905 - a sentence reads better than 28 quoted words
    "claim status eligibility remittance denial appeal prior authorization coverage member "
    "provider portal payer procedure modifier diagnosis allowed billed adjusted copay "
    "deductible coinsurance timely filing resubmission corrected claim attachment"
).split()
SAMPLE_READS = 60
MONTH_OF_JOBS = 50_000  # the plan's scale: archive pointer rows are measured at this volume


def make_output(rng: random.Random, org: uuid.UUID, job: uuid.UUID) -> dict[str, Any]:
    """A realistic processor output of 10-50 KB with 5-50 screenshots."""
    target = rng.randrange(10_000, 50_000)
    start = dt.datetime(2024, 5, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=rng.randrange(2_500_000))
    steps: list[dict[str, Any]] = []
    size = 0
    clock = start
    while size < target:
        claim = f"CLM-{rng.randrange(10**9):09d}"
        took = rng.randrange(20, 9000)
        clock += dt.timedelta(milliseconds=took)
        step = {
            "stepIndex": len(steps),
            "action": rng.choice(ACTIONS),
            "selector": f"#claims-table > tr:nth-child({rng.randrange(1, 60)}) > td.c{claim[-3:]}",
            "startedAt": clock.isoformat().replace("+00:00", "Z"),
            "durationMs": took,
            "success": rng.random() > 0.06,
            "extracted": {
                "claimNumber": claim,
                "patientAccount": f"PA{rng.randrange(10**7):07d}",
                "billedAmount": round(rng.uniform(50, 25_000), 2),
                "allowedAmount": round(rng.uniform(0, 20_000), 2),
                "status": rng.choice(STATUSES),
                "payer": rng.choice(PAYERS),
                "remarks": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(4, 30))),
            },
            "pageTitle": f"{rng.choice(PAYERS)} Provider Portal - {rng.choice(WORDS).title()}",
        }
        steps.append(step)
        size += len(json.dumps(step))
    shots = [
        {
            "stepIndex": rng.randrange(len(steps)),
            "url": f"{BASE}{org}/{job}/step-{i:02d}-{int(start.timestamp()) + i}.png",
            "width": 1920,
            "height": rng.choice([1080, 1200, 2400]),
            "capturedAt": (start + dt.timedelta(seconds=i * 3)).isoformat().replace("+00:00", "Z"),
        }
        for i in range(rng.randrange(5, 51))
    ]
    return {
        "success": all(s["success"] for s in steps),
        "stepResults": steps,
        "screenshots": shots,
        "extractedData": {"claimStatus": rng.choice(STATUSES), "payer": rng.choice(PAYERS)},
        "startedAt": start.isoformat().replace("+00:00", "Z"),
        "completedAt": clock.isoformat().replace("+00:00", "Z"),
        "durationMs": int((clock - start).total_seconds() * 1000),
        "processorVersion": "7.3.1",
    }


async def load_legacy(url: str, org: uuid.UUID, outputs: dict[uuid.UUID, dict[str, Any]]) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(sa.insert(legacy.organizations).values(id=str(org), name="bench"))
        wf = str(uuid.uuid4())
        await conn.execute(
            sa.insert(legacy.workflows).values(id=wf, organization_id=str(org), name="status")
        )
        jobs = [
            {
                "id": str(job),
                "organization_id": str(org),
                "workflow_id": wf,
                "credential_ids": [],
                "status": "completed",
                "result": output,
            }
            for job, output in outputs.items()
        ]
        await conn.execute(sa.insert(legacy.jobs), jobs)
        shots = [
            {
                "id": str(uuid.uuid4()),
                "job_id": str(job),
                "step_index": s["stepIndex"],
                "url": s["url"],
                "width": s["width"],
                "height": s["height"],
                "captured_at": dt.datetime.fromisoformat(s["capturedAt"].replace("Z", "")),
            }
            for job, output in outputs.items()
            for s in output["screenshots"]
        ]
        await conn.execute(sa.insert(legacy.execution_screenshots), shots)
    await engine.dispose()


async def load_optimized(
    store: ExecStore, org: uuid.UUID, outputs: dict[uuid.UUID, dict[str, Any]]
) -> float:
    async with store.unit(org) as uow:
        wf = await uow.reference.add_workflow("status")
        for job in outputs:
            await uow.jobs.create(workflow_id=wf.id, id=job, status="completed")
    gate = asyncio.Semaphore(16)
    urls = ScreenshotUrls(BASE)

    async def save(job: uuid.UUID, output: dict[str, Any]) -> None:
        async with gate, store.unit(org) as uow:
            repo = ResultRepository(
                session=uow.session,
                organization_id=org,
                archives=store.archives,
                hooks=uow,
                sessions=uow.store.sessions,
                screenshot_urls=urls,
            )
            await repo.save(job, output)

    started = time.perf_counter()
    await asyncio.gather(*(save(job, output) for job, output in outputs.items()))
    return time.perf_counter() - started


async def sizes(dsn: str) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
        jobs = await conn.fetchval("SELECT count(*) FROM jobs")
        column = await conn.fetchval("SELECT avg(pg_column_size(result)) FROM jobs")
        total_column = await conn.fetchval("SELECT sum(pg_column_size(result)) FROM jobs")
        shot_rows = await conn.fetchval("SELECT count(*) FROM execution_screenshots")
        shot_bytes = await conn.fetchval("SELECT pg_total_relation_size('execution_screenshots')")
        archive_bytes = await conn.fetchval(
            "SELECT coalesce(pg_total_relation_size(to_regclass('job_result_archives')), 0)"
        )
        blob_bytes = 0
        if archive_bytes:
            blob_bytes = await conn.fetchval("SELECT sum(stored_size) FROM job_result_archives")
    finally:
        await conn.close()
    return {
        "jobs": jobs,
        "column": float(column),
        "total_column": float(total_column),
        "shot_rows": shot_rows,
        "shot_bytes": float(shot_bytes),
        "archive_bytes": float(archive_bytes),
        "blob_bytes": float(blob_bytes or 0),
    }


async def read_timings(
    store: ExecStore, org: uuid.UUID, jobs: list[uuid.UUID]
) -> tuple[float, float]:
    cold: list[float] = []
    cached: list[float] = []
    assert store.archives.cache is not None
    async with store.unit(org) as uow:
        for job in jobs:
            store.archives.cache.clear()
            started = time.perf_counter()
            await uow.results.detail(job)
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            await uow.results.detail(job)  # the same job again: a cache hit
            cached.append(time.perf_counter() - started)
    stats = store.archives.cache.stats()
    assert stats.hits >= len(jobs), stats
    return statistics.median(cold) * 1000, statistics.median(cached) * 1_000_000


def sas_url(rng: random.Random, org: uuid.UUID, job: uuid.UUID, index: int) -> str:
    """A signed URL as Azure's user-delegation SAS makes it (about 420 characters)."""
    signature = "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        for _ in range(43)
    )
    query = (
        "sv=2023-11-03&st=2024-05-03T14%3A00%3A00Z&se=2024-05-10T14%3A00%3A00Z"
        f"&skoid={uuid.UUID(int=rng.getrandbits(128))}&sktid={uuid.UUID(int=rng.getrandbits(128))}"
        "&skt=2024-05-03T14%3A00%3A00Z&ske=2024-05-10T14%3A00%3A00Z&sks=b&skv=2023-11-03"
        f"&sr=b&sp=r&sig={signature}%3D"
    )
    return f"https://claimautoprod.blob.core.windows.net/signed/{org}/{job}/{index:02d}.png?{query}"


async def archive_row_bytes(dsn: str, org: uuid.UUID) -> dict[str, float]:
    """Pointer-row bytes (heap + indexes + TOAST) at a month's volume, now and as stored before."""
    conn = await asyncpg.connect(dsn)
    try:
        have = await conn.fetchval("SELECT count(*) FROM job_result_archives")
        wf = await conn.fetchval("SELECT workflow_id FROM jobs LIMIT 1")
        await conn.execute(
            "INSERT INTO jobs"
            " (id, organization_id, workflow_id, credential_ids, status, created_at)"
            " SELECT gen_random_uuid(), $1, $2, '{}', 'completed',"
            "        timestamptz '2024-05-01' + random() * interval '30 days'"
            " FROM generate_series(1, $3)",
            org,
            wf,
            MONTH_OF_JOBS - have,
        )
        # Realistic values: sizes like the saved ones, a distinct sha256 per row.
        await conn.execute(
            "INSERT INTO job_result_archives"
            " (archived_at, job_id, raw_size, stored_size, codec, format_version, sha256)"
            " SELECT j.created_at + interval '2 minutes', j.id,"
            "        (10000 + random() * 40000)::int, (2000 + random() * 8000)::int, 1, 1,"
            "        sha256(j.id::text::bytea)"
            " FROM jobs j WHERE NOT EXISTS"
            " (SELECT 1 FROM job_result_archives a WHERE a.job_id = j.id)"
        )
        # The previous layout, same rows: the key stored (unique), bigint sizes, a count.
        await conn.execute(
            "CREATE TABLE stored_key_pointers (job_id uuid PRIMARY KEY REFERENCES jobs(id),"
            " archived_at timestamptz NOT NULL, raw_size bigint NOT NULL,"
            " stored_size bigint NOT NULL, record_count integer NOT NULL,"
            " codec smallint NOT NULL, format_version smallint NOT NULL,"
            " sha256 bytea NOT NULL, blob_key varchar(400) NOT NULL UNIQUE)"
        )
        await conn.execute(
            "INSERT INTO stored_key_pointers SELECT a.job_id, a.archived_at, a.raw_size,"
            " a.stored_size, 1, a.codec, a.format_version, a.sha256,"
            " 'results/' || j.organization_id || '/' || to_char(j.created_at AT TIME ZONE 'UTC',"
            " 'YYYY/MM') || '/' || j.id || '/result.json.gz'"
            " FROM job_result_archives a JOIN jobs j ON j.id = a.job_id"
        )
        await conn.execute("VACUUM ANALYZE")
        rows = await conn.fetchval("SELECT count(*) FROM job_result_archives")
        now = await conn.fetchval("SELECT pg_total_relation_size('job_result_archives')")
        before = await conn.fetchval("SELECT pg_total_relation_size('stored_key_pointers')")
    finally:
        await conn.close()
    return {"rows": rows, "now": now / rows, "before": before / rows}


async def screenshot_url_costs(dsn: str, org: uuid.UUID) -> dict[str, float]:
    """Screenshot bytes per row when one URL in ten is a SAS URL, and with every URL whole."""
    rng = random.Random(420)
    urls = ScreenshotUrls(BASE)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT job_id, ordinal, step_index, width, height, captured_at, key_suffix"
            " FROM execution_screenshots"
        )
        sas: list[tuple[Any, ...]] = []
        whole: list[tuple[Any, ...]] = []
        for job, ordinal, step, width, height, captured, suffix in rows:
            url = urls.url(suffix, org, job)
            if rng.random() < 0.1:
                url = sas_url(rng, org, job, ordinal)
            sas.append(
                (job, ordinal, step, width, height, captured, urls.key_suffix(url, org, job))
            )
            whole.append(
                (job, ordinal, step, width, height, captured, "!" + urls.url(suffix, org, job))
            )
        sizes: dict[str, float] = {}
        for name, data in (("sas10", sas), ("whole", whole)):
            table = f"screenshots_{name}"
            await conn.execute(f"CREATE TABLE {table} (LIKE execution_screenshots INCLUDING ALL)")
            await conn.copy_records_to_table(
                table,
                records=data,
                columns=[
                    "job_id",
                    "ordinal",
                    "step_index",
                    "width",
                    "height",
                    "captured_at",
                    "key_suffix",
                ],
            )
            await conn.execute(f"VACUUM ANALYZE {table}")
            sizes[name] = await conn.fetchval(f"SELECT pg_total_relation_size('{table}')") / len(
                data
            )
            sizes[f"{name}_url_chars"] = statistics.mean(len(row[-1]) for row in data)
    finally:
        await conn.close()
    return sizes


async def main(count: int) -> dict[str, Any]:
    rng = random.Random(20240503)
    org = uuid.uuid4()
    outputs = {(job := uuid.uuid4()): make_output(rng, org, job) for _ in range(count)}
    server = PgServer("127.0.0.1", 5432)
    azurite = start_azurite()
    legacy_db = await create_database(server, prefix="bench_results_legacy")
    optimized_db = await create_database(server, prefix="bench_results_optimized")
    try:
        await migrate(server.url(legacy_db), "legacy_baseline")
        await load_legacy(server.url(legacy_db), org, outputs)
        await migrate(server.url(optimized_db))
        settings = load_settings(
            database_url=server.url(optimized_db),
            blob_url=f"azure://{azurite.new_container_name('bench')}",
            azure_connection_string=azurite.connection_string,
        )
        async with ExecStore.open(settings) as store:
            async with store.sessions() as session, session.begin():
                session.add(m.Organization(id=org, name="bench"))
            save_seconds = await load_optimized(store, org, outputs)
            sample = list(outputs)[:SAMPLE_READS]
            cold_ms, cached_us = await read_timings(store, org, sample)
        old = await sizes(server.dsn(legacy_db))
        new = await sizes(server.dsn(optimized_db))
        shots = await screenshot_url_costs(server.dsn(optimized_db), org)
        pointers = await archive_row_bytes(server.dsn(optimized_db), org)
    finally:
        await drop_database(server, legacy_db)
        await drop_database(server, optimized_db)
        azurite.stop()

    legacy_per_job = old["total_column"] / old["jobs"]
    optimized_per_job = (new["total_column"] + new["shot_bytes"] + new["archive_bytes"]) / new[
        "jobs"
    ]
    return {
        "jobs": count,
        "screenshots": new["shot_rows"],
        "result_column_bytes_legacy": round(old["column"], 1),
        "result_column_bytes": round(new["column"], 1),
        "screenshot_bytes_per_row_legacy": round(old["shot_bytes"] / old["shot_rows"], 1),
        "screenshot_bytes_per_row": round(new["shot_bytes"] / new["shot_rows"], 1),
        "screenshot_bytes_per_row_sas10": round(shots["sas10"], 1),
        "screenshot_bytes_per_row_whole": round(shots["whole"], 1),
        "archive_row_bytes": round(pointers["now"], 1),
        "archive_row_bytes_stored_key": round(pointers["before"], 1),
        "archive_rows_measured": pointers["rows"],
        "result_bytes_per_job_legacy": round(legacy_per_job, 1),
        "result_bytes_per_job": round(optimized_per_job, 1),
        "result_bytes_ratio": round(legacy_per_job / optimized_per_job, 2),
        "blob_bytes_per_job": round(new["blob_bytes"] / new["jobs"], 1),
        "save_per_second": round(count / save_seconds, 1),
        "detail_cold_ms": round(cold_ms, 2),
        "detail_cached_us": round(cached_us, 1),
        "targets_met": new["column"] <= 300
        and new["shot_bytes"] / new["shot_rows"] <= 150
        and pointers["now"] <= 150,
    }


def show(result: dict[str, Any]) -> None:
    table = Table(
        title=f"job results: {result['jobs']:,} jobs, {result['screenshots']:,} screenshots"
    )
    table.add_column("measure")
    table.add_column("legacy", justify="right")
    table.add_column("optimized", justify="right")
    table.add_column("target", justify="right")
    table.add_row(
        "jobs.result (avg B)",
        f"{result['result_column_bytes_legacy']:,}",
        f"{result['result_column_bytes']:,}",
        "<= 300",
    )
    table.add_row(
        "screenshot row (B incl. indexes)",
        f"{result['screenshot_bytes_per_row_legacy']:,}",
        f"{result['screenshot_bytes_per_row']:,}",
        "<= 150",
    )
    table.add_row(
        "  with 1 in 10 URLs a 420-char SAS URL",
        "-",
        f"{result['screenshot_bytes_per_row_sas10']:,}",
        "",
    )
    table.add_row(
        "  with every URL stored whole (no base URL)",
        "-",
        f"{result['screenshot_bytes_per_row_whole']:,}",
        "",
    )
    table.add_row(
        f"archive pointer row (B incl. index, {result['archive_rows_measured']:,} rows)",
        f"{result['archive_row_bytes_stored_key']:,} (key stored)",
        f"{result['archive_row_bytes']:,}",
        "<= 150",
    )
    table.add_row(
        "database bytes per job",
        f"{result['result_bytes_per_job_legacy']:,}",
        f"{result['result_bytes_per_job']:,}",
        f"{result['result_bytes_ratio']}x smaller",
    )
    table.add_row("blob bytes per job (compressed)", "-", f"{result['blob_bytes_per_job']:,}", "")
    table.add_row("saves per second (16 concurrent)", "-", f"{result['save_per_second']:,}", "")
    table.add_row("detail() cold, median ms", "-", f"{result['detail_cold_ms']}", "")
    table.add_row("detail() cached, median us", "-", f"{result['detail_cached_us']}", "")
    Console(stderr=False).print(table)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000, help="how many jobs (default 2000)")
    args = parser.parse_args()
    outcome = asyncio.run(main(args.jobs))
    show(outcome)
    print(json.dumps(outcome))
