"""The online migration from the legacy execution_log, on PostgreSQL and SQLite."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.config import load_settings
from execstore.db import create_engine
from execstore.errors import BackfillIncomplete
from execstore.ids import legacy_uuid
from execstore.logs import NewLogEntry
from execstore.logs.backfill import backfill_logs
from execstore.migrations.runner import compatible_revisions, migrate, schema_diff
from execstore.schema import legacy
from execstore.store import ExecStore
from support.waiting import wait_until

from .conftest import read_all

ORG = "cl9orgzzz0000abcdefghijk"  # a cuid: maps to md5(text)
UPPER = str(uuid.uuid4()).upper()
BRACED = "{" + str(uuid.uuid4()) + "}"
CUID = "ckx1y2z3a0000qwe8rty5uio"
PLAIN = str(uuid.uuid4())
JOBS = [UPPER, BRACED, CUID, PLAIN]
START = dt.datetime(2026, 9, 20, 8, 0)  # naive UTC, like Prisma's timestamp(3)


def mismatched(report: Any) -> list[str]:
    """The jobs the verification found different (set aside as ``job <id>``)."""
    return [a.key.removeprefix("job ") for a in report.set_aside if a.key.startswith("job ")]


def legacy_line(
    job: str, n: int, *, at: dt.datetime | None = None, level: str = "info"
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "job_id": job,
        "step_index": n % 4,
        "step_name": f"Step {n % 4}" if n % 3 else None,
        "level": level,
        "message": f"{job[:6]} legacy line {n}",
        "metadata": {"n": n} if n % 2 else None,
        "timestamp": at or START + dt.timedelta(minutes=n),
        "duration": n * 10 if n % 5 else None,
    }


@pytest.fixture
async def legacy_store(fresh_db_url: str, tmp_path: Path) -> AsyncIterator[ExecStore]:
    """A database with legacy rows, upgraded to the last expand revision (no contract)."""
    await migrate(fresh_db_url, "legacy_baseline")
    engine = create_engine(load_settings(database_url=fresh_db_url), foreign_keys=False)
    wf = str(uuid.uuid4())
    async with engine.begin() as conn:
        await conn.execute(sa.insert(legacy.organizations).values(id=ORG, name="Acme"))
        await conn.execute(sa.insert(legacy.workflows).values(id=wf, organization_id=ORG, name="w"))
        await conn.execute(
            sa.insert(legacy.jobs),
            [
                {"id": j, "organization_id": ORG, "workflow_id": wf, "credential_ids": []}
                for j in JOBS
            ],
        )
        rows = [legacy_line(job, n) for job in JOBS for n in range(30)]
        await conn.execute(sa.insert(legacy.execution_log), rows)
    await engine.dispose()
    await migrate(fresh_db_url, compatible_revisions()[-1])
    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path / 'blobs'}")
    async with ExecStore.open(settings) as store:
        yield store


async def _legacy_count(store: ExecStore) -> int:
    async with store.engine.connect() as conn:
        return int(await conn.scalar(sa.text("SELECT count(*) FROM execution_log")) or 0)


async def _backfill(store: ExecStore, **options: Any) -> Any:
    return await backfill_logs(store.engine, store.sessions, **options)


async def test_legacy_rows_move_verified_and_the_contract_drops_the_table(
    legacy_store: ExecStore, fresh_db_url: str
) -> None:
    store = legacy_store
    org = legacy_uuid(ORG)
    dry = await _backfill(store, dry_run=True)
    assert (dry.counts["legacy_rows"], dry.counts["moved"], dry.details["phase"]) == (
        120,
        0,
        "not_started",
    )
    with pytest.raises(
        BackfillIncomplete, match=r"execution_log holds 120 row.s. and the logs backfill"
    ):
        await migrate(fresh_db_url)
    report = await _backfill(store, batch_size=17)
    assert (report.counts["moved"], report.details["swapped"], report.details["verified"]) == (
        120,
        True,
        True,
    )
    assert (report.counts["legacy_checked"], report.counts["moved_checked"]) == (120, 120)
    assert report.details["checksum"] is not None
    assert report.counts["legacy_rows_removed"] == 120
    assert not report.needs_attention
    assert await _legacy_count(store) == 0
    for job in JOBS:
        got = await read_all(store, org, legacy_uuid(job))
        assert [e.message for e in got] == [f"{job[:6]} legacy line {n}" for n in range(30)]
        assert all(e.id < 0 for e in got)
        first = got[1]
        assert (first.step_index, first.step_name, first.metadata, first.duration_ms) == (
            1,
            "Step 1",
            {"n": 1},
            10,
        )
        assert first.timestamp == (START + dt.timedelta(minutes=1)).replace(tzinfo=dt.UTC)
    # Old writers are refused after the swap, with a message saying where rows went.
    async with store.engine.connect() as conn:
        with pytest.raises(Exception, match="execution_log is retired"):
            await conn.execute(sa.insert(legacy.execution_log).values(**legacy_line(PLAIN, 99)))
    again = await _backfill(store)
    assert (again.counts["moved"], again.details["phase"]) == (0, "verified")
    await migrate(fresh_db_url)
    assert await schema_diff(fresh_db_url) == []


async def test_rows_that_cannot_move_are_set_aside_and_block_the_contract(
    legacy_store: ExecStore, fresh_db_url: str
) -> None:
    store = legacy_store
    orphan = legacy_line("ck0gonejob0000nothere000", 1)
    chatty = legacy_line(PLAIN, 500, level="chatty")
    async with store.engine.begin() as conn:
        await conn.execute(sa.insert(legacy.execution_log), [orphan, chatty])
    report = await _backfill(store)
    assert report.details["verified"]
    assert report.needs_attention
    assert report.counts["set_aside"] == 2
    reasons = {a.key: a.reason for a in report.set_aside}
    assert "does not exist" in reasons[orphan["id"]]
    assert "unknown level 'chatty'" in reasons[chatty["id"]]
    assert await _legacy_count(store) == 2  # left intact
    with pytest.raises(BackfillIncomplete, match="holds 2 row"):
        await migrate(fresh_db_url)
    # Fix one in place (updates are allowed again once verified), delete the other.
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.update(legacy.execution_log)
            .where(legacy.execution_log.c.id == chatty["id"])
            .values(level="warn")
        )
        await conn.execute(
            sa.delete(legacy.execution_log).where(legacy.execution_log.c.id == orphan["id"])
        )
    fixed = await _backfill(store)
    assert (fixed.counts["set_aside"], fixed.needs_attention) == (0, False)
    got = await read_all(store, legacy_uuid(ORG), legacy_uuid(PLAIN))
    assert got[-1].message == chatty["message"]
    assert await _legacy_count(store) == 0
    await migrate(fresh_db_url)


async def test_concurrent_writers_lose_and_double_nothing_during_the_whole_migration(
    legacy_store: ExecStore, fresh_db_url: str
) -> None:
    """Old writers insert (also late rows, behind the copy cursor) and delete legacy rows,
    new writers append through execstore, from other tasks, the whole time."""
    store = legacy_store
    org = legacy_uuid(ORG)
    expected: Counter[tuple[uuid.UUID, str]] = Counter(
        (legacy_uuid(job), f"{job[:6]} legacy line {n}") for job in JOBS for n in range(30)
    )
    stop = asyncio.Event()
    retired = asyncio.Event()
    writer_engine = create_engine(load_settings(database_url=fresh_db_url))
    counter = itertools.count(1000)
    writes = [0]  # lines the writers have written or deleted so far

    async def old_writer() -> None:
        # Inserts a legacy row, sometimes far in the past (behind the cursor), and now
        # and then deletes one it wrote earlier; after the swap, appends like new code.
        mine: list[dict[str, Any]] = []
        while not stop.is_set():
            n = next(counter)
            job = JOBS[n % 4]
            late = n % 3 == 0
            row = legacy_line(job, n, at=START - dt.timedelta(days=3) if late else None)
            if not retired.is_set():
                try:
                    async with writer_engine.begin() as conn:
                        await conn.execute(sa.insert(legacy.execution_log).values(**row))
                    expected[(legacy_uuid(job), row["message"])] += 1
                    mine.append(row)
                except Exception as exc:
                    if "retired" not in str(exc):
                        raise
                    retired.set()
                    continue
                if n % 7 == 0 and mine:
                    gone = mine.pop(0)
                    async with writer_engine.begin() as conn:
                        deleted = await conn.execute(
                            sa.delete(legacy.execution_log).where(
                                legacy.execution_log.c.id == gone["id"]
                            )
                        )
                    # Once verified the legacy table is empty: a delete finds nothing.
                    expected[(legacy_uuid(gone["job_id"]), gone["message"])] -= deleted.rowcount
            else:
                async with store.unit(org) as uow:
                    await uow.logs.append(
                        legacy_uuid(job), [NewLogEntry(row["message"], timestamp=row["timestamp"])]
                    )
                expected[(legacy_uuid(job), row["message"])] += 1
            writes[0] += 1
            await asyncio.sleep(0.002)  # pacing (the writers' rate), not synchronization

    async def new_writer() -> None:
        job = legacy_uuid(PLAIN)
        while not stop.is_set():
            message = f"new line {next(counter)}"
            async with store.unit(org) as uow:
                await uow.logs.append(job, [NewLogEntry(message)])
            expected[(job, message)] += 1
            writes[0] += 1
            await asyncio.sleep(0.003)  # pacing (the writers' rate), not synchronization

    def written() -> int:
        return writes[0]

    writers = [asyncio.create_task(old_writer()), asyncio.create_task(new_writer())]
    try:
        started = written()
        await wait_until(lambda: written() > started + 10, "writers writing before the backfill")
        report = await _backfill(store, batch_size=5, pause_seconds=0.01)
        swapped = written()
        await wait_until(lambda: written() > swapped + 10, "writers writing after the swap")
    finally:
        stop.set()
        await asyncio.gather(*writers)
        await writer_engine.dispose()
    assert report.details["swapped"]
    assert report.details["verified"], mismatched(report)
    # Late rows behind the cursor came through the queue.
    assert report.counts["changes_applied"] > 0
    found: Counter[tuple[uuid.UUID, str]] = Counter()
    for job in JOBS:
        for entry in await read_all(store, org, legacy_uuid(job), limit=200):
            found[(entry.job_id, entry.message)] += 1
    assert found == +expected
    assert max(found.values()) == 1
    assert await _legacy_count(store) == 0


async def test_a_checksum_mismatch_is_reported_and_the_legacy_table_kept(
    legacy_store: ExecStore,
) -> None:
    store = legacy_store
    copied = await _backfill(store, swap=False)
    assert (copied.counts["moved"], copied.details["swapped"]) == (120, False)
    # A moved line changes behind the migration's back.
    async with store.engine.begin() as conn:
        changed = await conn.execute(
            sa.text(
                "UPDATE execution_log_partitioned SET message = 'tampered' "
                "WHERE id = (SELECT max(id) FROM execution_log_partitioned WHERE id < 0)"
            )
        )
        assert changed.rowcount == 1
    report = await _backfill(store)
    assert report.details["swapped"]
    assert not report.details["verified"]
    assert len(mismatched(report)) == 1
    assert report.needs_attention
    assert await _legacy_count(store) == 120  # nothing deleted
