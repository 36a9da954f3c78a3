"""Appending log lines: COPY (or executemany) of validated rows, into monthly partitions.

A batch of up to 250 lines is checked and encoded whole (:mod:`~execstore.logs.prepare`)
and its steps resolved (:mod:`~execstore.logs.steps`) before anything is written; a larger
one on PostgreSQL is written a chunk at a time inside a savepoint while the next chunk is
checked (``append_pipelined``), and a bad entry rolls back what was sent.

PostgreSQL writes with binary ``COPY`` through asyncpg on the unit's own connection, so
the lines commit or roll back with the unit. A month without a partition gets one on the
spot, from a separate connection, and the COPY is retried inside a savepoint; months that
archival may be detaching always go through that savepoint. SQLite writes with one
``executemany`` in the unit's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.errors import DatabaseError, IntegrityViolation, translate_database_errors
from execstore.logs.prepare import prepare_rows
from execstore.logs.steps import fill_steps, known_steps
from execstore.logs.types import NewLogEntry
from execstore.schema import models as m
from execstore.schema.partitions import (
    ensure_log_partitions,
    log_partitions,
    month_start,
    next_month,
)

__all__ = [
    "COPY_COLUMNS",
    "NEW_LINE_COLUMNS",
    "PIPELINE_CHUNK",
    "append_pipelined",
    "sqlite_write_lock",
    "write_lines",
]

COPY_COLUMNS: Final = (
    "timestamp",
    "id",
    "job_id",
    "step_id",
    "duration_ms",
    "level",
    "message",
    "metadata",
)
NEW_LINE_COLUMNS: Final = tuple(c for c in COPY_COLUMNS if c != "id")
"""Columns of a new line's tuple (the identity fills ``id``)."""
_NO_PARTITION: Final = "23514"  # check_violation: "no partition of relation ... found for row"


@dataclass
class _Months:
    """What one engine's appends remember of the log table's partitions."""

    months: set[dt.datetime] = field(default_factory=set)
    has_default: bool | None = None


_MONTHS: weakref.WeakKeyDictionary[Any, _Months] = weakref.WeakKeyDictionary()


def _months_of(session: AsyncSession) -> _Months:
    engine = session.get_bind()
    found = _MONTHS.get(engine)
    if found is None:
        found = _MONTHS[engine] = _Months()
    return found


async def sqlite_write_lock(session: AsyncSession) -> None:
    """On SQLite, take the database's write lock now (a no-op elsewhere).

    A deferred SQLite transaction that reads first and writes later fails at once with
    "database is locked" if another connection wrote in between; taking the write lock
    first makes concurrent writers wait for each other (busy timeout) instead.
    """
    if session.get_bind().dialect.name == "sqlite":
        with translate_database_errors():
            await session.execute(
                sa.update(m.ExecutionLogStep).where(sa.false()).values(id=m.ExecutionLogStep.id)
            )


# -- writing -----------------------------------------------------------------------------


async def write_lines(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession] | None,
    rows: Callable[[], Iterable[tuple[Any, ...]]],
    *,
    months: set[dt.datetime],
    risky_before: dt.datetime,
    with_ids: bool = False,
    savepoint: bool = False,
) -> None:
    """Insert the tuples ``rows()`` yields, in ``months``.

    ``rows`` is a factory so a COPY can be retried. Tuples follow :data:`COPY_COLUMNS`
    with ``with_ids`` (the backfill's lines), else :data:`NEW_LINE_COLUMNS` (the identity
    fills ``id``). Lines older than
    ``risky_before`` may land in a month archival is detaching, so they are copied inside
    a savepoint and retried after creating the partition; ``savepoint`` forces that
    (rows validated while streaming may raise half-way: nothing of them stays).
    """
    if not months:
        return
    if session.get_bind().dialect.name != "postgresql":
        await _insert_many(session, list(rows()), with_ids=with_ids)
        return
    caches = _months_of(session)
    if caches.has_default is None or not months <= caches.months:
        await _refresh_months(session, caches)
    driver = await _driver(session)
    if caches.has_default:
        # pg_partman mode: the DEFAULT partition takes lines of months without one.
        if savepoint:
            await _copy_in_savepoint(driver, rows(), with_ids)
        else:
            await _copy(driver, rows(), with_ids)
        return
    missing = months - caches.months
    if missing and sessions is not None:
        await _create_partitions(sessions, missing, caches)
    safe = months <= caches.months and min(months) >= month_start(risky_before)
    if safe and not savepoint:
        await _copy(driver, rows(), with_ids)
        return
    for attempt in range(3):
        try:
            await _copy_in_savepoint(driver, rows(), with_ids)
            return
        except IntegrityViolation as exc:
            state = getattr(exc.__cause__, "sqlstate", None)
            if state != _NO_PARTITION or sessions is None or attempt == 2:
                raise
        await _refresh_months(session, caches)
        await _create_partitions(sessions, months - caches.months, caches)


PIPELINE_CHUNK: Final = 250
"""The fewest lines per COPY when a batch is written while it is validated
(``append_pipelined``): a batch goes in COPYs of a quarter of it, 250 to 1,000 lines
(each COPY costs a round trip and its own setup on the server)."""
_YIELD_EVERY: Final = 50


async def append_pipelined(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession],
    entries: Sequence[NewLogEntry | Mapping[str, Any]],
    *,
    now: dt.datetime,
    job_id: uuid.UUID,
    workflow: uuid.UUID,
) -> bool:
    """``append``'s write of a batch of more than one chunk on PostgreSQL, pipelined.

    The batch goes as COPYs of a quarter of it (250 to 1,000 lines) inside one savepoint:
    while the server stores a chunk, the next is validated (yielding to the event loop
    every few lines so the COPY in flight can be sent), which hides most of the
    validation's cost behind the server's. All or nothing still: a bad entry waits for
    the COPY in flight, rolls the savepoint back and raises InvalidLogEntry, leaving
    the unit as it was. Returns False, with nothing written, when a COPY found no
    partition for its month (archival detached it meanwhile): the caller then writes
    the batch the classic way, which creates the month and retries.
    """
    caches = _months_of(session)
    if caches.has_default is None:
        await _refresh_months(session, caches)
    driver = await _driver(session)
    await _execute(driver, _SAVEPOINT)
    pending: asyncio.Future[None] | None = None
    try:
        size = min(max(PIPELINE_CHUNK, -(-len(entries) // 4)), 4 * PIPELINE_CHUNK)
        for start in range(0, len(entries), size):
            rows, months = await _prepare_chunk(
                session,
                sessions,
                entries[start : start + size],
                start,
                now=now,
                job_id=job_id,
                workflow=workflow,
            )
            if not caches.has_default and not months <= caches.months:
                await _create_partitions(sessions, months - caches.months, caches)
            if pending is not None:
                await pending
            pending = asyncio.ensure_future(_copy(driver, rows, False))
            await asyncio.sleep(0)  # the COPY is sent before the next chunk's validation
        if pending is not None:
            await pending
    except IntegrityViolation as exc:
        await _settle_and_undo(driver, pending)
        if getattr(exc.__cause__, "sqlstate", None) == _NO_PARTITION:
            await _refresh_months(session, caches)
            return False
        raise
    except BaseException:
        await _settle_and_undo(driver, pending)
        raise
    await _execute(driver, _RELEASE)
    return True


async def _prepare_chunk(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession] | None,
    chunk: Sequence[NewLogEntry | Mapping[str, Any]],
    start: int,
    *,
    now: dt.datetime,
    job_id: uuid.UUID,
    workflow: uuid.UUID,
) -> tuple[list[tuple[Any, ...]], set[dt.datetime]]:
    """The rows of ``chunk`` (the batch's lines from ``start`` on), step ids filled in."""
    rows: list[tuple[Any, ...]] = []
    months: set[dt.datetime] = set()
    missing: dict[tuple[int, str | None], list[int]] = {}
    for part in range(0, len(chunk), _YIELD_EVERY):
        if part:
            await asyncio.sleep(0)  # lets the COPY in flight go out and be answered
        got, part_missing, part_months = prepare_rows(
            chunk[part : part + _YIELD_EVERY],
            now=now,
            job_id=job_id,
            steps=known_steps(session, workflow),
            first=start + part,
        )
        rows += got
        months |= part_months
        for key, indexes in part_missing.items():
            missing.setdefault(key, []).extend(i - start for i in indexes)
    await fill_steps(session, sessions, workflow, rows, missing)
    return rows, months


async def _settle_and_undo(driver: Any, pending: asyncio.Future[None] | None) -> None:
    """Let the COPY in flight finish (its outcome no longer matters), then roll back."""
    if pending is not None and not pending.done():
        try:
            await asyncio.shield(pending)
        except asyncio.CancelledError:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
            raise
        except Exception:  # its error is the one being handled, or moot: rolled back below
            pass
    elif pending is not None and not pending.cancelled():
        pending.exception()  # retrieved: asyncio would log it as never retrieved
    await _execute(driver, _UNDO)


async def _execute(driver: Any, sql: str) -> None:
    try:
        await driver.execute(sql)
    except asyncpg.PostgresError as exc:
        raise _driver_error(exc) from exc


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection of the session's transaction, the transaction begun.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with its first statement: anything
    sent on the driver's connection before that would run outside the unit's transaction.
    """
    with translate_database_errors():
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        driver: Any = raw.driver_connection
        if not driver.is_in_transaction():
            await connection.exec_driver_sql("SELECT 1")
    return driver


def _driver_error(exc: asyncpg.PostgresError) -> DatabaseError:
    # The raw driver bypasses SQLAlchemy: translate here, keeping sqlstate on __cause__.
    error = IntegrityViolation if str(exc.sqlstate).startswith("23") else DatabaseError
    return error(str(exc).strip().splitlines()[0])


_SAVEPOINT: Final = "SAVEPOINT execstore_copy"
_RELEASE: Final = "RELEASE SAVEPOINT execstore_copy"
_UNDO: Final = "ROLLBACK TO SAVEPOINT execstore_copy; RELEASE SAVEPOINT execstore_copy"


async def _copy_in_savepoint(driver: Any, rows: Iterable[tuple[Any, ...]], with_ids: bool) -> None:
    """COPY inside a savepoint of the driver's own (the unit stays usable if it fails).

    Sent as plain SQL on the driver's connection: SQLAlchemy's ``begin_nested`` costs as
    much as the two round trips themselves. Released or rolled back before returning,
    so SQLAlchemy's view of the transaction never changes.
    """
    try:
        await driver.execute(_SAVEPOINT)
    except asyncpg.PostgresError as exc:
        raise _driver_error(exc) from exc
    try:
        await _copy(driver, rows, with_ids)
    except Exception:
        try:
            await driver.execute(_UNDO)
        except asyncpg.PostgresError as exc:
            raise _driver_error(exc) from exc
        raise
    try:
        await driver.execute(_RELEASE)
    except asyncpg.PostgresError as exc:
        raise _driver_error(exc) from exc


async def _copy(driver: Any, rows: Iterable[tuple[Any, ...]], with_ids: bool) -> None:
    columns = COPY_COLUMNS if with_ids else NEW_LINE_COLUMNS
    try:
        await driver.copy_records_to_table(
            m.ExecutionLogEntry.__tablename__, records=rows, columns=columns
        )
    except asyncpg.PostgresError as exc:
        raise _driver_error(exc) from exc


async def _insert_many(
    session: AsyncSession, rows: Sequence[tuple[Any, ...]], *, with_ids: bool
) -> None:
    if not rows:
        return
    table: sa.Table = m.ExecutionLogEntry.__table__  # type: ignore[assignment]
    names = COPY_COLUMNS if with_ids else NEW_LINE_COLUMNS
    values = [
        {
            name: (value if name != "metadata" or value is None else json.loads(value))
            for name, value in zip(names, row, strict=True)
        }
        for row in rows
    ]
    with translate_database_errors():
        await session.execute(sa.insert(table), values)


async def _refresh_months(session: AsyncSession, caches: _Months) -> None:
    connection = await session.connection()
    parts = await connection.run_sync(log_partitions)
    caches.has_default = any(p.default for p in parts)
    covered = set()
    for part in parts:
        if part.default or part.start is None or part.end is None or part.detach_pending:
            continue
        month = month_start(part.start)
        while month < part.end:
            if part.covers(month):
                covered.add(month)
            month = next_month(month)
    caches.months = covered


async def _create_partitions(
    sessions: async_sessionmaker[AsyncSession], months: set[dt.datetime], caches: _Months
) -> None:
    if not months:
        return
    async with sessions() as own:
        with translate_database_errors():
            async with own.begin():
                connection = await own.connection()
                await connection.run_sync(ensure_log_partitions, sorted(months))
            await _refresh_months(own, caches)
