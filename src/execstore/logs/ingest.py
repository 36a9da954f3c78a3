"""Appending log lines: validate a whole batch, resolve steps, then COPY (or executemany).

A batch is atomic: every entry is checked and encoded before anything is written, so an
entry that cannot be stored raises InvalidLogEntry naming it and leaves the database as
it was. Safe transformations are applied on the way (and documented): a message over
its column's limit is cut with the ``…[truncated]`` marker, NUL characters are removed
from text and from metadata strings, a naive timestamp is taken as UTC.

PostgreSQL writes with binary ``COPY`` through asyncpg on the unit's own connection, so
the lines commit or roll back with the unit. Steps resolve through a per-process cache
of the catalog; new catalog entries are committed in a short transaction of their own
(an id a row holds must never vanish with a rolled-back unit). A month without a
partition gets one on the spot, from a separate connection, and the COPY is retried
inside a savepoint; months that archival may be detaching always go through that
savepoint. SQLite writes with one ``executemany`` in the unit's transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import sqlalchemy as sa
from cachetools import LRUCache
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.errors import (
    DatabaseError,
    IntegrityViolation,
    InvalidLogEntry,
    translate_database_errors,
)
from execstore.logs.types import NewLogEntry
from execstore.schema import models as m
from execstore.schema.enums import LogLevel
from execstore.schema.partitions import (
    ensure_log_partitions,
    log_partitions,
    month_start,
    next_month,
)
from execstore.textlimits import fit_text, limit_of, strip_nul_json

__all__ = [
    "COPY_COLUMNS",
    "PreparedLine",
    "StepKey",
    "encode_json",
    "prepare_entries",
    "resolve_steps",
    "sqlite_write_lock",
    "write_lines",
]

StepKey = tuple[uuid.UUID, int, str | None]
"""A catalog key: (workflow id, step index, step name)."""

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
MESSAGE_LIMIT: Final = limit_of(m.ExecutionLogEntry.message) or 8000
STEP_NAME_LIMIT: Final = limit_of(m.ExecutionLogStep.name) or 500
_INT4: Final = 2**31
_NO_PARTITION: Final = "23514"  # check_violation: "no partition of relation ... found for row"
_LEVELS: Final = {level.value: level for level in LogLevel}


def _json_encoder() -> Callable[[Any], str]:
    def refuse(value: Any) -> Any:
        raise TypeError(f"{type(value).__name__} is not JSON")

    try:
        from json.encoder import c_make_encoder  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - not CPython
        c_make_encoder = None
    if c_make_encoder is None:  # pragma: no cover
        return json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=refuse
        ).encode
    # The C encoder built once: JSONEncoder.encode rebuilds it on every call, which is
    # half the cost of preparing a line.
    make = c_make_encoder(
        {}, refuse, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return str(json.encoder.encode_basestring(value))
        return "".join(make(value, 0))

    return encode


_encode = _json_encoder()


def encode_json(value: Any) -> str:
    """Compact JSON text of ``value``, NULs removed; TypeError/ValueError if it is not JSON."""
    text = _encode(value)
    if "\\u0000" in text:
        text = _encode(strip_nul_json(value))
    return text


@dataclass(frozen=True, slots=True)
class PreparedLine:
    """One validated line: everything but the step id, which needs the catalog."""

    timestamp: dt.datetime
    step: tuple[int, str | None]
    duration_ms: int | None
    level: int
    message: str
    metadata: str | None


def prepare_entries(
    entries: Sequence[NewLogEntry | Mapping[str, Any]], *, now: dt.datetime | None = None
) -> list[PreparedLine]:
    """Every entry validated and encoded, or InvalidLogEntry naming the first bad one."""
    stamp = now or dt.datetime.now(dt.UTC)
    return [_prepare(index, entry, stamp) for index, entry in enumerate(entries)]


def _field(entry: Mapping[str, Any], snake: str, camel: str, default: Any = None) -> Any:
    if snake in entry:
        return entry[snake]
    return entry.get(camel, default)


def _prepare(index: int, entry: NewLogEntry | Mapping[str, Any], now: dt.datetime) -> PreparedLine:
    message: Any
    if isinstance(entry, NewLogEntry):
        message, level, step_index = entry.message, entry.level, entry.step_index
        step_name, metadata = entry.step_name, entry.metadata
        timestamp, duration = entry.timestamp, entry.duration_ms
    elif isinstance(entry, Mapping):
        message = entry.get("message")
        level = entry.get("level", LogLevel.INFO)
        step_index = _field(entry, "step_index", "stepIndex", 0)
        step_name = _field(entry, "step_name", "stepName")
        metadata = entry.get("metadata")
        timestamp = entry.get("timestamp")
        duration = _field(entry, "duration_ms", "durationMs", entry.get("duration"))
    else:
        raise InvalidLogEntry(
            index, f"expected NewLogEntry or a mapping, not {type(entry).__name__}"
        )
    if not isinstance(message, str):
        raise InvalidLogEntry(index, f"message must be text, not {type(message).__name__}")
    if len(message) > MESSAGE_LIMIT or "\x00" in message:
        message = fit_text(message, MESSAGE_LIMIT) or ""
    return PreparedLine(
        timestamp=_timestamp(index, timestamp, now),
        step=(_int(index, "step_index", step_index), _step_name(index, step_name)),
        duration_ms=None if duration is None else _int(index, "duration_ms", duration),
        level=_level(index, level),
        message=message,
        metadata=None if metadata is None else _metadata(index, metadata),
    )


def _timestamp(index: int, value: Any, now: dt.datetime) -> dt.datetime:
    if value is None:
        return now
    if not isinstance(value, dt.datetime):
        raise InvalidLogEntry(index, f"timestamp must be a datetime, not {type(value).__name__}")
    # UTC always: SQLite keeps the digits only, so an offset must not reach it.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _int(index: int, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidLogEntry(index, f"{name} must be an integer, not {value!r}")
    if not -_INT4 <= value < _INT4:
        raise InvalidLogEntry(index, f"{name} {value} is out of range")
    return value


def _step_name(index: int, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidLogEntry(index, f"step_name must be text, not {type(value).__name__}")
    return fit_text(value, STEP_NAME_LIMIT)


def _level(index: int, value: Any) -> int:
    try:
        if isinstance(value, LogLevel):
            return int(value)
        if isinstance(value, str):
            return int(LogLevel.parse(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return int(_LEVELS[value])
    except KeyError:
        pass
    raise InvalidLogEntry(index, f"unknown level {value!r}")


def _metadata(index: int, value: Any) -> str:
    try:
        return encode_json(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidLogEntry(index, f"metadata cannot be encoded as JSON: {exc}") from exc


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


# -- step catalog ----------------------------------------------------------------------


@dataclass
class _Caches:
    """What one engine's appends remember: catalog ids and the months with partitions."""

    steps: LRUCache[StepKey, int] = field(default_factory=lambda: LRUCache(maxsize=100_000))
    months: set[dt.datetime] = field(default_factory=set)
    has_default: bool | None = None


_CACHES: weakref.WeakKeyDictionary[Any, _Caches] = weakref.WeakKeyDictionary()


def _caches(session: AsyncSession) -> _Caches:
    engine = session.get_bind()
    found = _CACHES.get(engine)
    if found is None:
        found = _CACHES[engine] = _Caches()
    return found


async def resolve_steps(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession] | None,
    keys: Iterable[StepKey],
) -> dict[StepKey, int]:
    """The catalog id of every key, adding the missing ones.

    PostgreSQL: new entries are committed in a transaction of their own (``sessions``)
    and cached for the process. SQLite: added in the caller's transaction, uncached.
    """
    wanted = set(keys)
    if session.get_bind().dialect.name != "postgresql" or sessions is None:
        return await _resolve_in(session, wanted, dialect=session.get_bind().dialect.name)
    cache = _caches(session).steps
    found = {key: cache[key] for key in wanted if key in cache}
    missing = wanted - found.keys()
    if missing:
        async with sessions() as own, own.begin():
            resolved = await _resolve_in(own, missing, dialect="postgresql")
        found.update(resolved)
        cache.update(resolved)
    return found


async def _resolve_in(
    session: AsyncSession, wanted: set[StepKey], *, dialect: str
) -> dict[StepKey, int]:
    step = m.ExecutionLogStep
    workflows = sorted({key[0] for key in wanted})
    found: dict[StepKey, int] = {}

    async def load() -> None:
        rows = await session.execute(
            sa.select(step.id, step.workflow_id, step.step_index, step.name).where(
                step.workflow_id.in_(workflows)
            )
        )
        for id_, workflow, index, name in rows:
            if (key := (workflow, index, name)) in wanted:
                found[key] = id_

    with translate_database_errors():
        await load()
        missing = sorted(wanted - found.keys(), key=lambda k: (str(k[0]), k[1], k[2] or ""))
        if missing:
            insert = postgresql.insert(step) if dialect == "postgresql" else sqlite.insert(step)
            values = [{"workflow_id": w, "step_index": i, "name": n} for w, i, n in missing]
            if dialect == "postgresql":
                await session.execute(insert.on_conflict_do_nothing(), values)
            else:
                # SQLite has one writer and its unique index does not dedupe NULL names:
                # only what the load did not find is inserted, so nothing doubles.
                await session.execute(sa.insert(step), values)
            await load()
    return found


# -- writing -----------------------------------------------------------------------------


async def write_lines(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession] | None,
    rows: Sequence[tuple[Any, ...]],
    *,
    risky_before: dt.datetime,
) -> None:
    """Insert ``rows`` (tuples in :data:`COPY_COLUMNS` order; ``id`` None for a new one).

    ``risky_before``: lines older than this may land in a month archival is detaching,
    so they are copied inside a savepoint and retried after creating the partition.
    """
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        await _insert_many(session, rows)
        return
    caches = _caches(session)
    months = {month_start(row[0]) for row in rows}
    if caches.has_default is None or not months <= caches.months:
        await _refresh_months(session, caches)
    if caches.has_default:
        await _copy(session, rows)  # pg_partman mode: the DEFAULT partition takes strays
        return
    missing = months - caches.months
    if missing and sessions is not None:
        await _create_partitions(sessions, missing, caches)
    if months <= caches.months and min(months) >= month_start(risky_before):
        await _copy(session, rows)
        return
    for attempt in range(3):
        try:
            async with session.begin_nested():
                await _copy(session, rows)
            return
        except IntegrityViolation as exc:
            state = getattr(exc.__cause__, "sqlstate", None)
            if state != _NO_PARTITION or sessions is None or attempt == 2:
                raise
        await _refresh_months(session, caches)
        await _create_partitions(sessions, months - caches.months, caches)


async def _copy(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> None:
    with translate_database_errors():
        connection = await session.connection()
        raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    columns: tuple[str, ...] = COPY_COLUMNS
    records: Iterable[tuple[Any, ...]] = rows
    if rows[0][1] is None:  # new lines: the identity fills ``id``
        records = (row[:1] + row[2:] for row in rows)
        columns = COPY_COLUMNS[:1] + COPY_COLUMNS[2:]
    try:
        await driver.copy_records_to_table(
            m.ExecutionLogEntry.__tablename__, records=records, columns=columns
        )
    except asyncpg.PostgresError as exc:
        # The raw driver bypasses SQLAlchemy: translate here, keeping sqlstate on __cause__.
        error = IntegrityViolation if str(exc.sqlstate).startswith("23") else DatabaseError
        raise error(str(exc).strip().splitlines()[0]) from exc


async def _insert_many(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> None:
    table: sa.Table = m.ExecutionLogEntry.__table__  # type: ignore[assignment]
    with_id = rows[0][1] is not None
    values = [
        {
            name: (value if name != "metadata" or value is None else json.loads(value))
            for name, value in zip(COPY_COLUMNS, row, strict=True)
            if with_id or name != "id"
        }
        for row in rows
    ]
    with translate_database_errors():
        await session.execute(sa.insert(table), values)


async def _refresh_months(session: AsyncSession, caches: _Caches) -> None:
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
    sessions: async_sessionmaker[AsyncSession], months: set[dt.datetime], caches: _Caches
) -> None:
    if not months:
        return
    async with sessions() as own:
        with translate_database_errors():
            async with own.begin():
                connection = await own.connection()
                await connection.run_sync(ensure_log_partitions, sorted(months))
            await _refresh_months(own, caches)
