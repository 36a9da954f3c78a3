"""Helpers for the log tests: jobs in a fresh organization and realistic lines."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from typing import Any

from execstore.logs import NewLogEntry
from execstore.schema.enums import LogLevel

WORDS = (  # noqa: SIM905 - a sentence reads better than quoted words
    "claim status eligibility remittance denial appeal authorization coverage member "
    "provider portal payer procedure modifier diagnosis allowed billed adjusted copay"
).split()


def lines(
    count: int,
    *,
    start: dt.datetime | None = None,
    step: dt.timedelta = dt.timedelta(seconds=1),
    seed: int = 1,
    tag: str = "",
) -> list[NewLogEntry]:
    """``count`` realistic lines one ``step`` apart from ``start`` (default: an hour ago)."""
    rng = random.Random(seed)
    begin = start or dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    return [
        NewLogEntry(
            message=f"{tag}line {i}: " + " ".join(rng.choice(WORDS) for _ in range(12)),
            level=rng.choice([LogLevel.DEBUG, LogLevel.INFO, LogLevel.INFO, LogLevel.WARN]),
            step_index=i // 5,
            step_name=f"Step {i // 5}" if i % 7 else None,
            metadata={"attempt": i % 3, "selector": f"#el-{i}"} if i % 2 else None,
            timestamp=begin + i * step,
            duration_ms=rng.randrange(10, 5000) if i % 3 else None,
        )
        for i in range(count)
    ]


async def read_all(store: Any, org: uuid.UUID, job: uuid.UUID, **filters: Any) -> list[Any]:
    """Every line of ``job`` through ``for_job``, page by page."""
    found: list[Any] = []
    after = None
    async with store.unit(org) as uow:
        while True:
            page = await uow.logs.for_job(
                job, cursor=after, limit=filters.pop("limit", 50), **filters
            )
            found += page.items
            if page.next_cursor is None:
                return found
            after = page.next_cursor


def months_ago(months: int, *, day: int = 10, hour: int = 12) -> dt.datetime:
    """A time ``months`` whole months before this month (``day`` of that month, UTC)."""
    now = dt.datetime.now(dt.UTC)
    year, month = now.year, now.month - months
    while month < 1:
        year, month = year - 1, month + 12
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC)


async def hot_count(store: Any, job: uuid.UUID) -> int:
    """How many of the job's lines are hot (the partitioned table and detached partitions)."""
    import sqlalchemy as sa

    from execstore.logs.repository import detached_tables
    from execstore.schema.models import ExecutionLogEntry

    async with store.sessions() as session:
        total = 0
        for table in [ExecutionLogEntry.__table__, *await detached_tables(session)]:
            total += int(
                await session.scalar(
                    sa.select(sa.func.count()).select_from(table).where(table.c.job_id == job)
                )
                or 0
            )
        return total


async def archive(store: Any, **options: Any) -> Any:
    """``archive_logs`` on the store with the test settings."""
    from execstore.logs import archive_logs

    options.setdefault("chunk_rows", 7)
    return await archive_logs(store.engine, store.sessions, store.archives, **options)
