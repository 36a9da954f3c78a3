"""Benchmark: execution logs on PostgreSQL and Azurite, against baselines of the same run.

Run: ``python benchmarks/bench_logs.py [--rows N]`` (PostgreSQL on 127.0.0.1:5432; it
creates and drops its own databases and starts its own Azurite). The same generated
lines (templated automation messages of about 190 characters, half with small metadata,
~60 lines a job, three months, several organizations and workflows) are stored:

- legacy: a database at ``legacy_baseline``, rows COPYed into ``execution_log`` (text
  uuid ids, as Prisma's ``uuid()`` makes them);
- execstore: head, through ``uow.logs.append``.

Figures (each ratio against a baseline measured in the same run):

- ``ingest_vs_copy``: ``append`` rows/s over raw asyncpg ``copy_records_to_table`` rows/s
  of the same rows, already converted to tuples, into the same partitioned table, the
  same batches (target >= 0.7, goal >= 0.9); interleaved repetitions, median;
  ``ingest_vs_copy_5000`` with 5000-line calls; ``ingest_vs_copy_small`` with one call
  per job (~55 lines), where the per-call cost (the unit's session and transaction, the
  job check) weighs more; ``ingest_vs_copy_live`` with the same lines stamped now, as a
  running job writes them (the sample's months-old lines each pay a savepoint against
  a month archival may be detaching; lines inside the hot window do not);
- ``ingest_vs_orm``: ``append`` over SQLAlchemy ORM ``add_all`` + commit (target >= 10);
- ``hot_bytes_ratio``: hot bytes/row (partitions + step catalog, heap + TOAST + indexes,
  ``pg_total_relation_size`` after VACUUM ANALYZE) over legacy bytes/row (target <= 0.7);
  ``hot_bytes_ratio_after_deletes``: the same after deleting 5% of the jobs on both sides;
- ``archive_bytes_ratio``: compressed archive bytes/row over legacy bytes/row (target
  <= 0.2, goal <= 0.1);
- ``pointer_bytes_per_archived_row``: ``pg_total_relation_size`` of the pointer table
  over archived rows (target <= 2), and ``_at_scale`` without the empty table's fixed pages;
- ``for_job_archived_cold_ms`` / ``_cached_ms``: p50 and p95 of reading a whole archived
  job (cache cleared / warm), on Azurite;
- ``archival_rows_per_s``: ``execstore archive logs`` end to end (detach, chunk, upload,
  read back, verify, record, drop).

An "archive unit" table compares chunk sizes (1 = one job's month per blob) on one
organization-month: archive bytes/row, pointer bytes/row, cold and cached reads.
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

from execstore.config import load_settings
from execstore.logs import NewLogEntry, archive_logs
from execstore.logs.encoding import encode_json
from execstore.migrations.runner import migrate
from execstore.schema import models as m
from execstore.schema.enums import LogLevel
from execstore.schema.partitions import month_start
from execstore.store import ExecStore
from support.azurite import AzuriteServer, start_azurite
from support.postgres import PgServer, create_database, drop_database

PAYERS = ["aetna", "cigna", "uhc", "humana", "anthem", "kaiser", "medicare", "bcbstx"]
PAGES = ["login", "claims search", "claim detail", "eligibility", "remittance", "appeals"]
FIELDS = ["memberId", "dateOfService", "npi", "claimNumber", "patientDob", "taxId"]
COMPONENTS = ["navigator", "extractor", "form-filler", "screenshotter", "session", "retry"]
STATUSES = ["PAID", "DENIED", "PENDING", "IN PROCESS"]
ERRORS = ["TimeoutError", "ElementNotVisible", "HTTP 503", "NavigationAborted", "StaleElement"]
STEP_NAMES = [
    "Log in to payer portal",
    "Accept terms and conditions",
    "Open claim status search",
    "Search claim by number",
    "Open claim detail",
    "Extract claim status",
    "Download remittance advice",
    "Check member eligibility",
    "Open appeals form",
    "Fill appeal reason",
    "Upload attachment",
    "Submit appeal",
    "Capture confirmation",
    "Log out",
]
ORG_WEIGHTS = [40, 25, 12, 8, 6, 4, 3, 2]
COPY_COLUMNS = ["timestamp", "job_id", "step_id", "duration_ms", "level", "message", "metadata"]
REPS = 5
ORM_ROWS = 6_000
READ_SAMPLE = 60


def _message(rng: random.Random, payer: str) -> tuple[str, str]:
    level, text = _text(rng, payer)
    # Loggers prefix the component, as the processor's do.
    return level, f"[{payer}-portal][{rng.choice(COMPONENTS)}] {text}"


def _text(rng: random.Random, payer: str) -> tuple[str, str]:
    claim = f"CLM{rng.randrange(10**9):09d}"
    npi = f"{rng.randrange(10**9, 10**10)}"
    url = (
        f"https://provider.{payer}.com/claims/{rng.choice(['search', 'detail', 'status'])}"
        f"?claimNumber={claim}&dos=2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        f"&session={rng.getrandbits(48):012x}"
    )
    table = rng.choice(["claims", "results", "member", "detail"])
    selector = f"#{table}-table > tr:nth-child({rng.randrange(1, 40)}) > td.col-{rng.randrange(9)}"
    page = rng.choice(PAGES)
    kind = rng.random()
    if kind < 0.18:
        return "info", (
            f"Navigated to {url} (HTTP 200, {rng.randrange(2000, 90000)} bytes, "
            f"{rng.randrange(80, 9000)} ms) for provider NPI {npi}"
        )
    if kind < 0.34:
        return "debug", (
            f"Waiting for selector '{selector}' to be visible on the {page} page of the "
            f"{payer} portal (timeout {rng.choice([5000, 10000, 30000])} ms, polling every 250 ms)"
        )
    if kind < 0.5:
        return "info", (
            f"Extracted claim {claim}: status {rng.choice(STATUSES)}, "
            f"billed ${rng.uniform(50, 25000):,.2f}, allowed ${rng.uniform(0, 20000):,.2f}, "
            f"paid ${rng.uniform(0, 15000):,.2f}, check EFT{rng.randrange(10**8):08d}, "
            f"adjustment CO-{rng.randrange(1, 300)}, remark N{rng.randrange(1, 800)}"
        )
    if kind < 0.64:
        return "info", (
            f"Filled field {rng.choice(FIELDS)} ({rng.randrange(6, 20)} characters, masked) for "
            f"patient account PA{rng.randrange(10**7):07d} and member "
            f"{rng.choice('ABCDEFGHJKLMNPRSTUVWXYZ')}{rng.randrange(10**9):09d} on {selector}"
        )
    if kind < 0.76:
        return "info", (
            f"Clicked {selector} after {rng.randrange(1, 3000)} ms; the {page} page loaded with "
            f"{rng.randrange(1, 80)} rows for claim {claim}, waiting for the network to go idle"
        )
    if kind < 0.86:
        return "debug", (
            f"Screenshot of the {page} page saved to screenshots/{claim}/"
            f"{rng.getrandbits(40):010x}.png ({rng.choice([1920, 1366])}x"
            f"{rng.choice([1080, 768, 2400])}, {rng.randrange(80, 900)} KB) for provider NPI {npi}"
        )
    if kind < 0.96:
        return "warn", (
            f"Retrying {rng.choice(['search', 'login', 'download', 'submit'])} after "
            f"{rng.choice(ERRORS)} on {url} (attempt {rng.randrange(1, 4)} of 3, backing off "
            f"{rng.randrange(100, 5000)} ms)"
        )
    return "error", (
        f"Step failed: {rng.choice(ERRORS)} while reading claim {claim} from {url}; the portal "
        f"returned an unexpected {page} page and the step will be marked for review"
    )


def generate(rows: int, seed: int = 20261202) -> dict[str, Any]:
    """Organizations, workflows, jobs and their lines (as plain dicts)."""
    rng = random.Random(seed)
    # Three whole months ending two months ago: every one older than any hot window <= 28d.
    months = [month_start(dt.datetime.now(dt.UTC))]
    for _ in range(5):
        months.append(month_start(months[-1] - dt.timedelta(days=1)))
    first, end = months[5], months[2]
    span = (end - first).total_seconds() - 86_400
    orgs = [uuid.uuid4() for _ in ORG_WEIGHTS]
    workflows = {org: [uuid.uuid4() for _ in range(rng.randrange(2, 6))] for org in orgs}
    steps = {
        wf: rng.sample(STEP_NAMES, rng.randrange(6, len(STEP_NAMES)))
        for wfs in workflows.values()
        for wf in wfs
    }
    jobs: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    while len(lines) < rows:
        org = rng.choices(orgs, ORG_WEIGHTS)[0]
        wf = rng.choice(workflows[org])
        job = uuid.uuid4()
        payer = rng.choice(PAYERS)
        count = max(3, min(2000, int(rng.lognormvariate(3.8, 0.7))))
        clock = first + dt.timedelta(seconds=rng.uniform(0, span))
        jobs.append({"id": job, "org": org, "workflow": wf, "created": clock})
        names = steps[wf]
        for i in range(count):
            clock += dt.timedelta(milliseconds=rng.randrange(5, 6000))
            index = min(i * len(names) // count, len(names) - 1)
            level, message = _message(rng, payer)
            meta = None
            if rng.random() < 0.5:
                meta = {"attempt": rng.randrange(1, 4), "elapsedMs": rng.randrange(5, 9000)}
                if rng.random() < 0.5:
                    meta["httpStatus"] = rng.choice([200, 200, 200, 302, 404, 503])
            lines.append(
                {
                    "job": job,
                    "workflow": wf,
                    "org": org,
                    "timestamp": clock,
                    "level": level,
                    "step_index": index,
                    "step_name": names[index],
                    "message": message,
                    "metadata": meta,
                    "duration": rng.randrange(1, 9000) if rng.random() < 0.6 else None,
                }
            )
    lines = lines[:rows]
    used = {line["job"] for line in lines}
    return {
        "orgs": orgs,
        "workflows": workflows,
        "jobs": [j for j in jobs if j["id"] in used],
        "lines": lines,
    }


async def load_legacy(dsn: str, data: dict[str, Any]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "organizations",
            records=[(str(o), "bench") for o in data["orgs"]],
            columns=["id", "name"],
        )
        await conn.copy_records_to_table(
            "workflows",
            records=[
                (str(wf), str(org), "wf") for org, wfs in data["workflows"].items() for wf in wfs
            ],
            columns=["id", "organization_id", "name"],
        )
        await conn.copy_records_to_table(
            "jobs",
            records=[
                (str(j["id"]), str(j["org"]), str(j["workflow"]), [], "completed")
                for j in data["jobs"]
            ],
            columns=["id", "organization_id", "workflow_id", "credential_ids", "status"],
        )
        ordered = sorted(data["lines"], key=lambda line: line["timestamp"])
        await conn.copy_records_to_table(
            "execution_log",
            records=[
                (
                    str(uuid.uuid4()),
                    str(line["job"]),
                    line["step_index"],
                    line["step_name"],
                    line["level"],
                    line["message"],
                    None if line["metadata"] is None else json.dumps(line["metadata"]),
                    line["timestamp"].replace(tzinfo=None),
                    line["duration"],
                )
                for line in ordered
            ],
            columns=[
                "id",
                "job_id",
                "step_index",
                "step_name",
                "level",
                "message",
                "metadata",
                "timestamp",
                "duration",
            ],
        )
    finally:
        await conn.close()


async def load_reference(store: ExecStore, data: dict[str, Any]) -> None:
    async with store.sessions() as session, session.begin():
        session.add_all(m.Organization(id=org, name="bench") for org in data["orgs"])
        await session.flush()
        session.add_all(
            m.Workflow(id=wf, organization_id=org, name="wf")
            for org, wfs in data["workflows"].items()
            for wf in wfs
        )
        await session.flush()
        await session.execute(
            sa.insert(m.Job),
            [
                {
                    "id": j["id"],
                    "organization_id": j["org"],
                    "workflow_id": j["workflow"],
                    "status": "completed",
                    "created_at": j["created"],
                    "credential_ids": [],
                }
                for j in data["jobs"]
            ],
        )


def batches(
    lines: list[dict[str, Any]], size: int, *, per_job: bool = True
) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(first line, lines) groups appended to the first line's job: each job's own lines
    in calls of at most ``size`` (``per_job``), or calls of exactly ``size`` lines as a
    long-running job would send them (the bulk case)."""
    if not per_job:
        ordered = sorted(lines, key=lambda line: (str(line["workflow"]), line["timestamp"]))
        return [
            (ordered[start], ordered[start : start + size])
            for start in range(0, len(ordered) - size + 1, size)
        ]
    groups: dict[Any, list[dict[str, Any]]] = {}
    for line in lines:
        groups.setdefault(line["job"], []).append(line)
    out = []
    for group in groups.values():
        for start in range(0, len(group), size):
            chunk = group[start : start + size]
            out.append((chunk[0], chunk))
    return out


def entries(group: list[dict[str, Any]]) -> list[NewLogEntry]:
    return [
        NewLogEntry(
            message=line["message"],
            level=line["level"],
            step_index=line["step_index"],
            step_name=line["step_name"],
            metadata=line["metadata"],
            timestamp=line["timestamp"],
            duration_ms=line["duration"],
        )
        for line in group
    ]


async def truncate(store: ExecStore) -> None:
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql("TRUNCATE execution_log_partitioned")


async def time_append(
    store: ExecStore, work: list[tuple[dict[str, Any], list[NewLogEntry]]]
) -> float:
    started = time.perf_counter()
    for first, batch in work:
        async with store.unit(first["org"]) as uow:
            await uow.logs.append(first["job"], batch)
    return time.perf_counter() - started


async def time_copy(dsn: str, work: list[tuple[dict[str, Any], list[tuple[Any, ...]]]]) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        for _, records in work:
            await conn.copy_records_to_table(
                "execution_log_partitioned", records=records, columns=COPY_COLUMNS
            )
        return time.perf_counter() - started
    finally:
        await conn.close()


async def step_ids(store: ExecStore) -> dict[tuple[uuid.UUID, int, str | None], int]:
    async with store.sessions() as session:
        rows = await session.execute(
            sa.select(
                m.ExecutionLogStep.workflow_id,
                m.ExecutionLogStep.step_index,
                m.ExecutionLogStep.name,
                m.ExecutionLogStep.id,
            )
        )
        return {(w, i, n): id_ for w, i, n, id_ in rows}


async def measure_ingest(
    store: ExecStore, dsn: str, data: dict[str, Any], sample: int
) -> dict[str, float]:
    lines = data["lines"]
    rng = random.Random(7)
    picked = rng.sample(lines, sample)
    picked.sort(key=lambda line: (str(line["job"]), line["timestamp"]))
    # The same lines stamped as a running job writes them (now, inside the hot window):
    # the sample's own times lie months back, where each call also pays a savepoint
    # against a month that archival may be detaching.
    now = dt.datetime.now(dt.UTC)
    live = [
        dict(line, timestamp=now - dt.timedelta(milliseconds=len(picked) - i))
        for i, line in enumerate(picked)
    ]
    results: dict[str, float] = {}
    for label, size, per_job, sample in (
        ("", 1000, False, picked),
        ("_5000", 5000, False, picked),
        ("_small", 1000, True, picked),
        ("_live", 1000, False, live),
    ):
        groups = batches(sample, size, per_job=per_job)
        as_entries = [(first, entries(group)) for first, group in groups]
        # Warm up: creates the months' partitions and the step catalog, fills caches.
        await time_append(store, as_entries)
        await truncate(store)
        ids = await step_ids(store)
        as_records = [
            (
                first,
                [
                    (
                        line["timestamp"],
                        first["job"],
                        ids[(first["workflow"], line["step_index"], line["step_name"])],
                        line["duration"],
                        int(LogLevel.parse(line["level"])),
                        line["message"],
                        None if line["metadata"] is None else encode_json(line["metadata"]),
                    )
                    for line in group
                ],
            )
            for first, group in groups
        ]
        ratios, appends, copies = [], [], []
        for _ in range(REPS):
            await truncate(store)
            copy_s = await time_copy(dsn, as_records)
            await truncate(store)
            append_s = await time_append(store, as_entries)
            ratios.append(copy_s / append_s)
            appends.append(len(sample) / append_s)
            copies.append(len(sample) / copy_s)
        results[f"ingest_vs_copy{label}"] = statistics.median(ratios)
        results[f"append_rows_per_s{label}"] = statistics.median(appends)
        results[f"copy_rows_per_s{label}"] = statistics.median(copies)
    await truncate(store)
    # The ORM baseline: add_all of mapped rows and a commit per 1000-line batch, the
    # same batches and step ids as the append measured above.
    groups = batches(picked, 1000, per_job=False)[: ORM_ROWS // 1000]
    orm_lines = [line for _, group in groups for line in group]
    ids = await step_ids(store)
    started = time.perf_counter()
    for first, group in groups:
        async with store.sessions() as session, session.begin():
            session.add_all(
                m.ExecutionLogEntry(
                    timestamp=line["timestamp"],
                    job_id=first["job"],
                    step_id=ids[(first["workflow"], line["step_index"], line["step_name"])],
                    duration_ms=line["duration"],
                    level=LogLevel.parse(line["level"]),
                    message=line["message"],
                    metadata_=line["metadata"],
                )
                for line in group
            )
    orm_s = time.perf_counter() - started
    results["orm_rows_per_s"] = len(orm_lines) / orm_s
    await truncate(store)
    results["ingest_vs_orm"] = results["append_rows_per_s"] / results["orm_rows_per_s"]
    return results


async def relation_bytes(dsn: str, names: list[str]) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        total = 0
        for name in names:
            total += await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", name)
        return int(total)
    finally:
        await conn.close()


async def vacuum(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def hot_tables(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        parts = await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'execution_log_partitioned'::regclass"
        )
        return [p["relname"] for p in parts] + ["execution_log_steps"]
    finally:
        await conn.close()


async def read_job(store: ExecStore, org: uuid.UUID, job: uuid.UUID) -> int:
    found = 0
    after = None
    async with store.unit(org) as uow:
        while True:
            page = await uow.logs.for_job(job, cursor=after, limit=1000)
            found += len(page.items)
            if page.next_cursor is None:
                return found
            after = page.next_cursor


async def read_timings(
    store: ExecStore, picks: list[tuple[uuid.UUID, uuid.UUID]]
) -> dict[str, float]:
    cold, cached = [], []
    assert store.archives.cache is not None
    for org, job in picks:
        store.archives.cache.clear()
        started = time.perf_counter()
        await read_job(store, org, job)
        cold.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await read_job(store, org, job)
        cached.append((time.perf_counter() - started) * 1000)

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20)[-1]

    return {
        "cold_p50": statistics.median(cold),
        "cold_p95": p95(cold),
        "cached_p50": statistics.median(cached),
        "cached_p95": p95(cached),
    }


async def pointer_bytes_at_scale(dsn: str) -> float:
    """Bytes one pointer row costs with its index entries, from ~100K copies of the rows."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM execution_log_archives")
        copies = max(1, 100_000 // max(1, rows))
        await conn.execute(
            "CREATE TABLE bench_pointers (LIKE execution_log_archives INCLUDING ALL)"
        )
        await conn.execute(
            "INSERT INTO bench_pointers (start_date, end_date, organization_id, first_job, "
            "last_job, source_id, revision, lost, job_keys, archived_at, raw_size, stored_size, "
            "record_count, codec, format_version, sha256, blob_key) "
            "SELECT start_date, end_date, organization_id, gen_random_uuid(), last_job, source_id, "
            "revision, lost, job_keys, archived_at, raw_size, stored_size, record_count, codec, "
            "format_version, sha256, blob_key || '-' || n FROM execution_log_archives, "
            "generate_series(1, $1) AS n",
            copies,
        )
        await conn.execute("VACUUM ANALYZE bench_pointers")
        size = await conn.fetchval("SELECT pg_total_relation_size('bench_pointers')")
        count = await conn.fetchval("SELECT count(*) FROM bench_pointers")
        await conn.execute("DROP TABLE bench_pointers")
        return float(size) / float(count)
    finally:
        await conn.close()


UNIT_SIZES = (1, 1000, 2000, 5000, 20000)
UNIT_READS = 30


async def measure_units(
    server: PgServer, azurite: AzuriteServer, data: dict[str, Any]
) -> list[dict[str, Any]]:
    """Archive one organization-month with each chunk size and read it back."""
    org = data["orgs"][0]
    month = month_start(min(line["timestamp"] for line in data["lines"]))
    month = month_start(month + dt.timedelta(days=40))
    subset = [
        line
        for line in data["lines"]
        if line["org"] == org and month_start(line["timestamp"]) == month
    ]
    jobs = {line["job"] for line in subset}
    part = {
        "orgs": [org],
        "workflows": {org: data["workflows"][org]},
        "jobs": [j for j in data["jobs"] if j["id"] in jobs],
        "lines": subset,
    }
    results = []
    for size in UNIT_SIZES:
        name = await create_database(server, prefix="bench_logs_unit")
        try:
            await migrate(server.url(name))
            settings = load_settings(
                database_url=server.url(name),
                blob_url=f"azure://{azurite.new_container_name('units')}",
                azure_connection_string=azurite.connection_string,
            )
            async with ExecStore.open(settings) as store:
                await load_reference(store, part)
                await time_append(
                    store, [(first, entries(group)) for first, group in batches(subset, 1000)]
                )
                report = await archive_logs(
                    store.engine, store.sessions, store.archives, hot_days=30, chunk_rows=size
                )
                per_pointer = await pointer_bytes_at_scale(server.dsn(name))
                picks = sorted(jobs, key=str)[:UNIT_READS]
                timings = await read_timings(store, [(org, job) for job in picks])
            results.append(
                {
                    "chunk_rows": size,
                    "rows": report.counts["lines_archived"],
                    "chunks": report.counts["chunks_written"],
                    "archive_bytes_per_row": report.counts["stored_bytes"]
                    / report.counts["lines_archived"],
                    "pointer_bytes_per_archived_row": per_pointer
                    * report.counts["chunks_written"]
                    / report.counts["lines_archived"],
                    **timings,
                }
            )
        finally:
            await drop_database(server, name)
    return results


async def main(rows: int) -> dict[str, Any]:
    data = generate(rows)
    server = PgServer("127.0.0.1", 5432)
    azurite = start_azurite()
    legacy_db = await create_database(server, prefix="bench_logs_legacy")
    db = await create_database(server, prefix="bench_logs")
    out: dict[str, Any] = {"rows": rows, "jobs": len(data["jobs"])}
    out["avg_message_chars"] = statistics.mean(len(line["message"]) for line in data["lines"])
    try:
        await migrate(server.url(legacy_db), "legacy_baseline")
        await load_legacy(server.dsn(legacy_db), data)
        await vacuum(server.dsn(legacy_db))
        legacy_bytes = await relation_bytes(server.dsn(legacy_db), ["execution_log"])
        out["legacy_bytes_per_row"] = legacy_bytes / rows

        await migrate(server.url(db))
        settings = load_settings(
            database_url=server.url(db),
            blob_url=f"azure://{azurite.new_container_name('bench')}",
            azure_connection_string=azurite.connection_string,
        )
        async with ExecStore.open(settings) as store:
            await load_reference(store, data)
            out.update(await measure_ingest(store, server.dsn(db), data, min(40_000, rows)))
            work = [(first, entries(group)) for first, group in batches(data["lines"], 1000)]
            out["load_rows_per_s"] = rows / await time_append(store, work)
            await vacuum(server.dsn(db))
            hot = await relation_bytes(server.dsn(db), await hot_tables(server.dsn(db)))
            out["hot_bytes_per_row"] = hot / rows
            out["hot_bytes_ratio"] = out["hot_bytes_per_row"] / out["legacy_bytes_per_row"]

            # Realistic churn: 5% of the jobs deleted on both sides, then VACUUM ANALYZE.
            rng = random.Random(11)
            gone = rng.sample(data["jobs"], len(data["jobs"]) // 20)
            gone_ids = {j["id"] for j in gone}
            left = sum(1 for line in data["lines"] if line["job"] not in gone_ids)
            conn = await asyncpg.connect(server.dsn(legacy_db))
            try:
                await conn.execute(
                    "DELETE FROM execution_log WHERE job_id = ANY($1::text[])",
                    [str(j) for j in gone_ids],
                )
            finally:
                await conn.close()
            for job in gone:
                async with store.unit(job["org"]) as uow:
                    await uow.jobs.delete(job["id"])
            await vacuum(server.dsn(legacy_db))
            await vacuum(server.dsn(db))
            legacy_after = await relation_bytes(server.dsn(legacy_db), ["execution_log"]) / left
            hot_after = (
                await relation_bytes(server.dsn(db), await hot_tables(server.dsn(db))) / left
            )
            out["legacy_bytes_per_row_after_deletes"] = legacy_after
            out["hot_bytes_per_row_after_deletes"] = hot_after
            out["hot_bytes_ratio_after_deletes"] = hot_after / legacy_after

            started = time.perf_counter()
            report = await archive_logs(
                store.engine,
                store.sessions,
                store.archives,
                hot_days=settings.log_hot_days,
                chunk_rows=settings.log_archive_chunk_rows,
            )
            archival_s = time.perf_counter() - started
            assert not report.set_aside, report.set_aside
            archived = report.counts["lines_archived"]
            out["archived_rows"] = archived
            out["archive_chunks"] = report.counts["chunks_written"]
            out["archival_rows_per_s"] = archived / archival_s
            out["archive_bytes_per_row"] = report.counts["stored_bytes"] / archived
            out["archive_raw_bytes_per_row"] = report.counts["raw_bytes"] / archived
            out["archive_bytes_ratio"] = out["archive_bytes_per_row"] / out["legacy_bytes_per_row"]
            await vacuum(server.dsn(db))
            pointers = await relation_bytes(server.dsn(db), ["execution_log_archives"])
            out["pointer_bytes_per_archived_row"] = pointers / archived
            per_pointer = await pointer_bytes_at_scale(server.dsn(db))
            out["pointer_bytes_per_pointer_row"] = per_pointer
            out["pointer_bytes_per_archived_row_at_scale"] = (
                per_pointer * report.counts["chunks_written"] / archived
            )
            readable = [j for j in data["jobs"] if j["id"] not in gone_ids]
            picks = random.Random(5).sample(readable, min(READ_SAMPLE, len(readable)))
            timings = await read_timings(store, [(j["org"], j["id"]) for j in picks])
            out["for_job_archived_cold_ms"] = {
                "p50": timings["cold_p50"],
                "p95": timings["cold_p95"],
            }
            out["for_job_archived_cached_ms"] = {
                "p50": timings["cached_p50"],
                "p95": timings["cached_p95"],
            }
        out["units"] = await measure_units(server, azurite, data)
    finally:
        await drop_database(server, legacy_db)
        await drop_database(server, db)
        azurite.stop()
    out["targets"] = {
        "ingest_vs_copy >= 0.7": out["ingest_vs_copy"] >= 0.7,
        "ingest_vs_orm >= 10": out["ingest_vs_orm"] >= 10,
        "hot_bytes_ratio <= 0.7": out["hot_bytes_ratio"] <= 0.7,
        "archive_bytes_ratio <= 0.2": out["archive_bytes_ratio"] <= 0.2,
        "pointer_bytes_per_archived_row <= 2": out["pointer_bytes_per_archived_row"] <= 2,
    }
    return out


def _r(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {k: _r(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_r(v) for v in value]
    return value


def show(result: dict[str, Any]) -> None:
    console = Console(stderr=False)
    table = Table(title=f"execution logs: {result['rows']:,} lines, {result['jobs']:,} jobs")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("baseline (same run)", justify="right")
    table.add_column("target", justify="right")
    table.add_row(
        "append rows/s (1000-line calls)",
        f"{result['append_rows_per_s']:,.0f}",
        f"raw COPY {result['copy_rows_per_s']:,.0f}",
        "",
    )
    table.add_row("ingest_vs_copy", f"{result['ingest_vs_copy']:.2f}", "", ">= 0.7 (goal 0.9)")
    table.add_row(
        "append rows/s (5000-line calls)",
        f"{result['append_rows_per_s_5000']:,.0f}",
        f"raw COPY {result['copy_rows_per_s_5000']:,.0f}",
        "",
    )
    table.add_row("ingest_vs_copy_5000", f"{result['ingest_vs_copy_5000']:.2f}", "", "")
    table.add_row(
        "append rows/s (one call per job, ~55 lines)",
        f"{result['append_rows_per_s_small']:,.0f}",
        f"raw COPY {result['copy_rows_per_s_small']:,.0f}",
        "",
    )
    table.add_row("ingest_vs_copy_small", f"{result['ingest_vs_copy_small']:.2f}", "", "")
    table.add_row(
        "append rows/s (1,000-line calls, lines stamped now)",
        f"{result['append_rows_per_s_live']:,.0f}",
        f"raw COPY {result['copy_rows_per_s_live']:,.0f}",
        "",
    )
    table.add_row("ingest_vs_copy_live", f"{result['ingest_vs_copy_live']:.2f}", "", "")
    table.add_row(
        "ingest_vs_orm",
        f"{result['ingest_vs_orm']:.1f}",
        f"ORM {result['orm_rows_per_s']:,.0f}/s",
        ">= 10",
    )
    table.add_row(
        "hot bytes/row",
        f"{result['hot_bytes_per_row']:.1f}",
        f"legacy {result['legacy_bytes_per_row']:.1f}",
        "",
    )
    table.add_row("hot_bytes_ratio", f"{result['hot_bytes_ratio']:.3f}", "", "<= 0.7 (goal 0.6)")
    table.add_row(
        "hot_bytes_ratio after 5% job deletes",
        f"{result['hot_bytes_ratio_after_deletes']:.3f}",
        f"legacy {result['legacy_bytes_per_row_after_deletes']:.1f}",
        "",
    )
    table.add_row(
        "archive bytes/row (gzip NDJSON)",
        f"{result['archive_bytes_per_row']:.1f}",
        f"raw {result['archive_raw_bytes_per_row']:.1f}",
        "",
    )
    table.add_row(
        "archive_bytes_ratio", f"{result['archive_bytes_ratio']:.3f}", "", "<= 0.2 (goal 0.1)"
    )
    table.add_row(
        "pointer_bytes_per_archived_row",
        f"{result['pointer_bytes_per_archived_row']:.3f}",
        f"at scale {result['pointer_bytes_per_archived_row_at_scale']:.3f}",
        "<= 2",
    )
    cold, cached = result["for_job_archived_cold_ms"], result["for_job_archived_cached_ms"]
    table.add_row(
        "for_job archived cold ms p50/p95", f"{cold['p50']:.1f} / {cold['p95']:.1f}", "", ""
    )
    table.add_row(
        "for_job archived cached ms p50/p95", f"{cached['p50']:.2f} / {cached['p95']:.2f}", "", ""
    )
    table.add_row("archival rows/s", f"{result['archival_rows_per_s']:,.0f}", "", "")
    console.print(table)
    units = Table(title="archive unit (one organization-month)")
    for col in (
        "lines per chunk",
        "chunks",
        "archive B/row",
        "pointer B/row",
        "cold p50 ms",
        "cached p50 ms",
    ):
        units.add_column(col, justify="right")
    for unit in result["units"]:
        units.add_row(
            "1 job (job-month)" if unit["chunk_rows"] == 1 else f"{unit['chunk_rows']:,}",
            f"{unit['chunks']:,}",
            f"{unit['archive_bytes_per_row']:.1f}",
            f"{unit['pointer_bytes_per_archived_row']:.2f}",
            f"{unit['cold_p50']:.1f}",
            f"{unit['cached_p50']:.2f}",
        )
    console.print(units)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="log lines (default 200,000)")
    args = parser.parse_args()
    outcome = _r(asyncio.run(main(args.rows)))
    show(outcome)
    print(json.dumps(outcome))
