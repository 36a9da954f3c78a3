"""Monthly partitions of ``execution_log_partitioned`` (PostgreSQL only).

Partitions are named ``execution_log_partitioned_pYYYYMM`` and cover
``[first of month, first of next month)`` in UTC.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

__all__ = ["LOG_TABLE", "ensure_log_partitions", "log_partitions", "month_start", "partition_name"]

LOG_TABLE = "execution_log_partitioned"


def month_start(when: dt.datetime) -> dt.datetime:
    """The first instant (UTC) of ``when``'s month."""
    when = when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: dt.datetime) -> dt.datetime:
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def partition_name(start: dt.datetime) -> str:
    """The partition covering the month that starts at ``start``."""
    return f"{LOG_TABLE}_p{start:%Y%m}"


def ensure_log_partitions(
    conn: sa.Connection, since: dt.datetime, *, months_ahead: int = 3
) -> list[str]:
    """Create the missing monthly partitions from ``since``'s month up to ``months_ahead``."""
    if conn.dialect.name != "postgresql":
        return []
    existing = set(log_partitions(conn))
    created = []
    start = month_start(since)
    horizon = month_start(dt.datetime.now(dt.UTC))
    for _ in range(months_ahead):
        horizon = _next_month(horizon)
    while start <= horizon:
        name = partition_name(start)
        if name not in existing:
            end = _next_month(start)
            conn.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {LOG_TABLE} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
            created.append(name)
        start = _next_month(start)
    return created


def log_partitions(conn: sa.Connection) -> list[str]:
    """The names of the log table's partitions, oldest first."""
    if conn.dialect.name != "postgresql":
        return []
    rows = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        f"WHERE i.inhparent = '{LOG_TABLE}'::regclass ORDER BY c.relname"
    )
    return list(rows.scalars())
