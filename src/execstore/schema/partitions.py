"""Monthly partitions of ``execution_log_partitioned`` (PostgreSQL only).

Bounds are always read from the catalog (``pg_get_expr(relpartbound)`` cast back to
``timestamptz``), never parsed from names: a partition may have been created by
pg_partman, renamed by an operator, or carry a suffix because a detached table still
holds the usual name. New partitions are named ``execution_log_partitioned_pYYYY_MM``,
which is pg_partman 4.x's own monthly naming, so switching to pg_partman later adopts
them instead of colliding with them.

A partition is created as a plain table and then attached: ``ATTACH PARTITION`` needs
only a SHARE UPDATE EXCLUSIVE lock on the parent, so appends and reads go on meanwhile
(``CREATE TABLE ... PARTITION OF`` would take ACCESS EXCLUSIVE). Creators serialize on
one advisory lock, so two schedulers (or two appends that found no partition) never
race to create the same month.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import sqlalchemy as sa

from execstore.clock import SYSTEM_CLOCK, Clock

__all__ = [
    "LOG_TABLE",
    "PARTITION_LOCK",
    "Partition",
    "ensure_log_partitions",
    "ensure_partitions_ahead",
    "log_partitions",
    "month_start",
    "next_month",
    "partition_name",
]

LOG_TABLE: Final = "execution_log_partitioned"
PARTITION_LOCK: Final = 7_311_092_417_125_001
"""The advisory lock every creator of log partitions takes (transaction-scoped)."""


@dataclass(frozen=True, slots=True)
class Partition:
    """One partition of the log table, as the catalog describes it."""

    name: str
    oid: int
    start: dt.datetime | None
    """Inclusive lower bound (None for MINVALUE or the DEFAULT partition)."""
    end: dt.datetime | None
    """Exclusive upper bound (None for MAXVALUE or the DEFAULT partition)."""
    default: bool
    detach_pending: bool

    def covers(self, month: dt.datetime) -> bool:
        """Whether every instant of the month starting at ``month`` falls in this partition."""
        if self.default:
            return False
        low_ok = self.start is None or self.start <= month
        high_ok = self.end is None or self.end >= next_month(month)
        return low_ok and high_ok and not self.detach_pending


def month_start(when: dt.datetime) -> dt.datetime:
    """The first instant (UTC) of ``when``'s month."""
    when = when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: dt.datetime) -> dt.datetime:
    """The first instant of the month after the one starting at ``start``."""
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


def partition_name(start: dt.datetime) -> str:
    """The usual name of the partition for the month starting at ``start``."""
    return f"{LOG_TABLE}_p{start:%Y_%m}"


_BOUNDS_SQL: Final = f"""
SELECT c.relname, c.oid::bigint, i.inhdetachpending,
       pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT' AS is_default,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                     'FROM \\(''([^'']*)''\\)'))[1]::timestamptz AS range_start,
       (regexp_match(pg_get_expr(c.relpartbound, c.oid),
                     'TO \\(''([^'']*)''\\)'))[1]::timestamptz AS range_end
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = '{LOG_TABLE}'::regclass
"""


def log_partitions(conn: sa.Connection) -> list[Partition]:
    """The log table's partitions (DEFAULT first, then by lower bound); [] on SQLite."""
    if conn.dialect.name != "postgresql":
        return []
    rows = conn.exec_driver_sql(_BOUNDS_SQL).all()
    parts = [
        Partition(
            name=name,
            oid=int(oid),
            start=start,
            end=end,
            default=bool(is_default),
            detach_pending=bool(pending),
        )
        for name, oid, pending, is_default, start, end in rows
    ]
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(parts, key=lambda p: (not p.default, p.start or floor))


def ensure_log_partitions(conn: sa.Connection, months: Iterable[dt.datetime]) -> list[str]:
    """Create the partitions missing for ``months`` (month starts); the names created.

    Takes :data:`PARTITION_LOCK` for the rest of the caller's transaction, then reads
    the catalog again, so concurrent callers create each month once.
    """
    if conn.dialect.name != "postgresql":
        return []
    wanted = sorted({month_start(m) for m in months})
    if not wanted:
        return []
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PARTITION_LOCK})")
    existing = log_partitions(conn)
    taken = {p.name for p in existing}
    taken |= set(
        conn.execute(
            sa.text("SELECT relname FROM pg_class WHERE relname LIKE :prefix"),
            {"prefix": f"{LOG_TABLE}_p%"},
        ).scalars()
    )
    created = []
    for month in wanted:
        if any(p.covers(month) for p in existing):
            continue
        name = _free_name(partition_name(month), taken)
        end = next_month(month)
        conn.exec_driver_sql(
            f'CREATE TABLE "{name}" (LIKE {LOG_TABLE} INCLUDING DEFAULTS INCLUDING STORAGE)'
        )
        conn.exec_driver_sql(
            f'ALTER TABLE {LOG_TABLE} ATTACH PARTITION "{name}" '
            f"FOR VALUES FROM ('{month.isoformat()}') TO ('{end.isoformat()}')"
        )
        taken.add(name)
        created.append(name)
    return created


def ensure_partitions_ahead(
    conn: sa.Connection, *, months_ahead: int, clock: Clock = SYSTEM_CLOCK
) -> list[str]:
    """Create the clock's month's partition and the next ``months_ahead`` if missing."""
    month = month_start(clock.now())
    months = [month]
    for _ in range(months_ahead):
        month = next_month(month)
        months.append(month)
    return ensure_log_partitions(conn, months)


def _free_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"
