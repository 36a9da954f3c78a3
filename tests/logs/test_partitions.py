"""Monthly partitions on PostgreSQL: on the spot, ahead of time, and under pg_partman."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.config import LogPartitionMode, load_settings
from execstore.logs import NewLogEntry
from execstore.logs.maintenance import maintain_log_partitions
from execstore.schema.partitions import log_partitions, month_start, next_month
from execstore.store import ExecStore
from support.timeline import new_jobs

from .conftest import archive, hot_count, lines, months_ago, read_all

pytestmark = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)]
)


async def _partitions(store: Any) -> list[Any]:
    async with store.engine.connect() as conn:
        return await conn.run_sync(log_partitions)


@pytest.fixture
async def fresh_store(fresh_db_url: str, tmp_path: Path) -> AsyncIterator[ExecStore]:
    from execstore.migrations.runner import migrate

    await migrate(fresh_db_url)
    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path / 'blobs'}")
    async with ExecStore.open(settings) as store:
        yield store


async def test_a_month_without_a_partition_gets_one_on_the_spot(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    long_ago = dt.datetime(2019, 3, 5, tzinfo=dt.UTC)
    far_ahead = dt.datetime(2033, 7, 9, tzinfo=dt.UTC)
    async with store.unit(org) as uow:
        await uow.logs.append(
            job,
            [NewLogEntry("then", timestamp=long_ago), NewLogEntry("later", timestamp=far_ahead)],
        )
    got = await read_all(store, org, job)
    assert [e.message for e in got] == ["then", "later"]
    bounds = {(p.start, p.end) for p in await _partitions(store)}
    assert (month_start(long_ago), next_month(month_start(long_ago))) in bounds
    assert (month_start(far_ahead), next_month(month_start(far_ahead))) in bounds


async def _a_month_dropped_behind_the_cache(
    store: Any, org: uuid.UUID, job: uuid.UUID, message: str
) -> dt.datetime:
    """A line in March 2019, then that month's partition dropped as another process's
    archival would: this process's cache still lists the month."""
    long_ago = dt.datetime(2019, 3, 5, tzinfo=dt.UTC)
    async with store.unit(org) as uow:
        await uow.logs.append(job, [NewLogEntry(message, timestamp=long_ago)])
    parts = [p for p in await _partitions(store) if p.start == month_start(long_ago)]
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql(f'DROP TABLE "{parts[0].name}"')
    return long_ago


async def test_a_partition_dropped_behind_the_cache_is_recreated_in_the_same_unit(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    """Another process archived and dropped a month this process still thinks exists:
    the COPY fails inside its savepoint, the month is created and the COPY retried, and
    the unit's earlier work stays."""
    long_ago = await _a_month_dropped_behind_the_cache(store, org, job, "gone")
    async with store.unit(org) as uow:
        await uow.logs.append(job, [NewLogEntry("now")])
        await uow.logs.append(job, [NewLogEntry("then", timestamp=long_ago)])
    got = await read_all(store, org, job)
    assert sorted(e.message for e in got) == ["now", "then"]


async def test_bounds_come_from_the_catalog_not_from_names(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    # A partition whose name says January 2034 but which holds June 2034.
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql(
            "CREATE TABLE execution_log_partitioned_p2034_01 "
            "(LIKE execution_log_partitioned INCLUDING DEFAULTS)"
        )
        await conn.exec_driver_sql(
            "ALTER TABLE execution_log_partitioned ATTACH PARTITION "
            "execution_log_partitioned_p2034_01 "
            "FOR VALUES FROM ('2034-06-01 00:00+00') TO ('2034-07-01 00:00+00')"
        )
    june, january = dt.datetime(2034, 6, 15, tzinfo=dt.UTC), dt.datetime(2034, 1, 15, tzinfo=dt.UTC)
    async with store.unit(org) as uow:
        await uow.logs.append(job, [NewLogEntry("june", timestamp=june)])
        await uow.logs.append(job, [NewLogEntry("january", timestamp=january)])
    parts = {p.name: (p.start, p.end) for p in await _partitions(store)}
    assert parts["execution_log_partitioned_p2034_01"][0] == dt.datetime(2034, 6, 1, tzinfo=dt.UTC)
    # January got a partition of its own, under a free name.
    assert parts["execution_log_partitioned_p2034_01_2"] == (
        dt.datetime(2034, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2034, 2, 1, tzinfo=dt.UTC),
    )
    async with store.engine.connect() as conn:
        where = await conn.scalar(
            sa.text(
                "SELECT tableoid::regclass::text FROM execution_log_partitioned WHERE job_id = :j "
                "AND message = 'june'"
            ),
            {"j": job},
        )
    assert where == "execution_log_partitioned_p2034_01"


async def test_maintain_creates_months_ahead_once_under_concurrency(fresh_store: ExecStore) -> None:
    before = {p.name for p in await _partitions(fresh_store)}
    assert len(before) == 4  # the revision made this month and three ahead
    reports = await asyncio.gather(
        *(maintain_log_partitions(fresh_store.engine, months_ahead=6) for _ in range(4))
    )
    created = [name for r in reports for name in r.details["created"]]
    assert len(created) == 3
    assert len(set(created)) == 3
    parts = await _partitions(fresh_store)
    starts = sorted(p.start for p in parts)
    month = month_start(dt.datetime.now(dt.UTC))
    expected = [month]
    for _ in range(6):
        expected.append(next_month(expected[-1]))
    assert starts == expected
    assert not any(p.default for p in parts)


@pytest.fixture
async def partman_store(fresh_db_url: str, tmp_path: Path) -> AsyncIterator[ExecStore]:
    """A store on a fresh database with pg_partman 4.x installed (make test installs it)."""
    from execstore.migrations.runner import migrate

    settings = load_settings(
        database_url=fresh_db_url,
        blob_url=f"file:{tmp_path / 'blobs'}",
        log_partition_mode=LogPartitionMode.PARTMAN,
    )
    await migrate(fresh_db_url)
    async with ExecStore.open(settings) as store:
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql("CREATE SCHEMA partman")
            await conn.exec_driver_sql("CREATE EXTENSION pg_partman SCHEMA partman")
        yield store


async def test_partman_mode_registers_maintains_and_archives(partman_store: ExecStore) -> None:
    store = partman_store
    report = await maintain_log_partitions(
        store.engine, mode=LogPartitionMode.PARTMAN, months_ahead=3
    )
    assert report.details["registered_with_partman"]
    parts = await _partitions(store)
    assert any(p.default for p in parts)
    this_month = month_start(dt.datetime.now(dt.UTC))
    assert {p.start for p in parts if not p.default} >= {this_month}
    async with store.engine.connect() as conn:
        config = (
            await conn.execute(
                sa.text(
                    "SELECT premake, infinite_time_partitions, retention FROM partman.part_config "
                    "WHERE parent_table = 'public.execution_log_partitioned'"
                )
            )
        ).one()
    assert tuple(config) == (3, True, None)
    again = await maintain_log_partitions(
        store.engine, mode=LogPartitionMode.PARTMAN, months_ahead=3
    )
    assert not again.details["registered_with_partman"]

    org = uuid.uuid4()
    async with store.unit(org) as uow:
        await uow.reference.add_organization("o")
    old, stray = await new_jobs(store, org, 2)
    sent_old = lines(20, start=months_ago(3))
    async with store.unit(org) as uow:
        await uow.logs.append(old, sent_old)
        # Months with no partition under pg_partman: the DEFAULT partition takes them.
        await uow.logs.append(stray, lines(3, start=dt.datetime(2020, 2, 3, tzinfo=dt.UTC)))
    default = next(p for p in await _partitions(store) if p.default)
    async with store.engine.connect() as conn:
        assert await conn.scalar(sa.text(f'SELECT count(*) FROM "{default.name}"')) == 23
    moved = await maintain_log_partitions(
        store.engine, mode=LogPartitionMode.PARTMAN, months_ahead=3
    )
    assert (moved.counts["moved_from_default"], moved.counts["default_rows"]) == (23, 0)
    starts = {p.start for p in await _partitions(store)}
    assert {dt.datetime(2020, 2, 1, tzinfo=dt.UTC), month_start(months_ago(3))} <= starts

    # Archival cannot detach CONCURRENTLY beside a DEFAULT partition: it detaches plainly.
    result = await archive(store)
    assert result.set_aside == []
    assert result.details["partitions_dropped"]
    assert await hot_count(store, old) == 0
    assert [e.message for e in await read_all(store, org, old)] == [s.message for s in sent_old]
    assert len(await read_all(store, org, stray)) == 3

    # Old lines still in the DEFAULT partition are archived and deleted in batches.
    async with store.unit(org) as uow:
        await uow.logs.append(stray, lines(2, start=dt.datetime(2019, 5, 1, tzinfo=dt.UTC)))
    result = await archive(store)
    assert (result.counts["lines_archived"], result.counts["lines_deleted"]) == (2, 2)
    async with store.engine.connect() as conn:
        assert await conn.scalar(sa.text(f'SELECT count(*) FROM "{default.name}"')) == 0
    assert len(await read_all(store, org, stray)) == 5


async def test_partman_mode_without_the_extension_says_what_to_do(fresh_store: ExecStore) -> None:
    from execstore.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="CREATE EXTENSION pg_partman"):
        await maintain_log_partitions(fresh_store.engine, mode=LogPartitionMode.PARTMAN)


# -- large batches: written a chunk at a time while the rest is validated ---------------


async def test_a_large_batch_reaching_a_month_without_a_partition_gets_it(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    # 600 lines: the last chunk falls in a month no partition covers yet.
    long_ago = dt.datetime(2019, 3, 5, tzinfo=dt.UTC)
    batch = [*lines(400, tag="now "), *lines(200, start=long_ago, tag="then ")]
    async with store.unit(org) as uow:
        assert await uow.logs.append(job, batch) == 600
    got = await read_all(store, org, job, limit=1000)
    assert len(got) == 600
    assert sum(e.message.startswith("then ") for e in got) == 200
    bounds = {(p.start, p.end) for p in await _partitions(store)}
    assert (month_start(long_ago), next_month(month_start(long_ago))) in bounds


async def test_a_large_batch_whose_month_vanished_is_written_the_classic_way(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    """A month dropped behind the cache fails a chunk's COPY: what the batch had sent is
    rolled back, the month created and the whole batch written again; the unit's
    earlier work stays."""
    long_ago = await _a_month_dropped_behind_the_cache(store, org, job, "first")
    batch = [*lines(300, tag="now "), *lines(300, start=long_ago, tag="then ")]
    async with store.unit(org) as uow:
        await uow.logs.append(job, [NewLogEntry("before")])
        assert await uow.logs.append(job, batch) == 600
    got = await read_all(store, org, job, limit=1000)
    assert len(got) == 601  # "first" went with its partition
    assert sum(e.message.startswith("then ") for e in got) == 300
    assert "before" in {e.message for e in got}
