"""``execstore maintain``'s log step: keep monthly partitions ahead of the calendar.

Native mode (the default): create this month's partition and the next
``EXECSTORE_LOG_MONTHS_AHEAD`` (3) if missing. Every creator takes one advisory lock
and reads the catalog again under it, so any number of schedulers may run this at once.

pg_partman mode (``EXECSTORE_LOG_PARTITION_MODE=partman``, for teams already running
pg_partman 4.x): the first run registers the table with ``create_parent`` (native,
monthly, ``premake`` = months ahead, starting a month before the oldest partition
execstore made, whose names already follow pg_partman's so it adopts them), with
``infinite_time_partitions`` on and no pg_partman retention (execstore archives and
drops old months itself, after verifying their chunks). Every run then calls
``run_maintenance`` for the table, so pg_partman's own scheduler (BGW, pg_cron) and
execstore cooperate: whoever runs first creates the months. pg_partman always keeps a
DEFAULT partition; lines that landed there (a month without a partition) are moved
into their month with ``partition_data_time`` (which creates it) by this step.

Requires ``CREATE EXTENSION pg_partman`` (any schema; execstore finds it) in the
database. SQLite has no partitions: the step reports that and does nothing.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.config import LogPartitionMode
from execstore.errors import ConfigurationError, translate_database_errors
from execstore.operations.batch import BatchReport
from execstore.schema.partitions import (
    LOG_TABLE,
    PARTITION_LOCK,
    ensure_partitions_ahead,
    log_partitions,
    month_start,
    next_month,
)

__all__ = ["maintain_log_partitions"]


async def maintain_log_partitions(
    engine: AsyncEngine,
    *,
    mode: LogPartitionMode = LogPartitionMode.NATIVE,
    months_ahead: int = 3,
    clock: Clock = SYSTEM_CLOCK,
) -> BatchReport:
    """Create the log partitions the coming months need (see the module docstring).

    Counts the ``partitions`` there are, lines ``moved_from_default`` and the
    ``default_rows`` still in pg_partman's DEFAULT partition; ``details``: the ``mode``,
    the partitions ``created``, whether the table was ``registered_with_partman`` and
    why the step was ``skipped`` (None: it ran). "This month" is the clock's.
    pg_partman's ``run_maintenance`` (partman mode) decides by the database's own
    clock: it is pg_partman's code, not execstore's.
    """
    report = BatchReport.start(
        "maintain partitions", "partitions", "moved_from_default", "default_rows"
    )
    mode = LogPartitionMode(mode)
    report.details.update(mode=mode.value, created=[], registered_with_partman=False, skipped=None)
    if engine.dialect.name != "postgresql":
        report.details["skipped"] = "SQLite has no partitions"
        return report
    with translate_database_errors():
        async with engine.begin() as conn:
            if mode == LogPartitionMode.PARTMAN:
                await _partman(conn, report, months_ahead, clock)
            else:
                report.details["created"] = await conn.run_sync(
                    lambda c: ensure_partitions_ahead(c, months_ahead=months_ahead, clock=clock)
                )
            parts = await conn.run_sync(log_partitions)
            report.counts["partitions"] = sum(1 for p in parts if not p.default)
    return report


def previous_month(start: dt.datetime) -> dt.datetime:
    """The first instant of the month before the one starting at ``start``."""
    month = start.replace(day=1)
    back = month - dt.timedelta(days=1)
    previous = back.replace(day=1)
    assert next_month(previous) == month
    return previous


async def _partman(
    conn: AsyncConnection, report: BatchReport, months_ahead: int, clock: Clock
) -> None:
    await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PARTITION_LOCK})")
    schema = await conn.scalar(
        sa.text(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
            "WHERE e.extname = 'pg_partman'"
        )
    )
    if schema is None:
        raise ConfigurationError(
            "EXECSTORE_LOG_PARTITION_MODE is partman but this database has no pg_partman: "
            "run CREATE SCHEMA partman; CREATE EXTENSION pg_partman SCHEMA partman; "
            "(Debian: apt-get install postgresql-15-partman) or use the native mode"
        )
    partman = f'"{schema}"'
    parent = f"{await conn.scalar(sa.text('SELECT current_schema()'))}.{LOG_TABLE}"
    before = {p.name for p in await conn.run_sync(log_partitions)}
    known = await conn.scalar(
        sa.text(f"SELECT 1 FROM {partman}.part_config WHERE parent_table = :parent"),
        {"parent": parent},
    )
    if known is None:
        starts = [p.start for p in await conn.run_sync(log_partitions) if p.start is not None]
        earliest = min(starts, default=None) or month_start(clock.now())
        # pg_partman 4.7 stops before creating its DEFAULT partition and template table
        # when every child it would create exists already: start one month earlier, so
        # it creates one (empty, old: the next archival run drops it).
        start = previous_month(earliest)
        await conn.execute(
            sa.text(
                f"SELECT {partman}.create_parent(p_parent_table := :parent, "
                "p_control := 'timestamp', p_type := 'native', p_interval := 'monthly', "
                "p_premake := :premake, p_start_partition := :start)"
            ),
            {"parent": parent, "premake": months_ahead, "start": start.strftime("%Y-%m-%d")},
        )
        report.details["registered_with_partman"] = True
    await conn.execute(
        sa.text(
            f"UPDATE {partman}.part_config SET premake = :premake, "
            "infinite_time_partitions = true, retention = NULL WHERE parent_table = :parent"
        ),
        {"parent": parent, "premake": months_ahead},
    )
    await conn.execute(sa.text(f"SELECT {partman}.run_maintenance(:parent)"), {"parent": parent})
    default = next((p for p in await conn.run_sync(log_partitions) if p.default), None)
    if default is not None:
        stray = int(await conn.scalar(sa.text(f'SELECT count(*) FROM "{default.name}"')) or 0)
        if stray:
            moved = await conn.scalar(
                sa.text(f"SELECT {partman}.partition_data_time(:parent, p_batch_count := 1000000)"),
                {"parent": parent},
            )
            report.counts["moved_from_default"] = int(moved or 0)
        report.counts["default_rows"] = int(
            await conn.scalar(sa.text(f'SELECT count(*) FROM "{default.name}"')) or 0
        )
    after = {p.name for p in await conn.run_sync(log_partitions)}
    report.details["created"] = sorted(after - before)
