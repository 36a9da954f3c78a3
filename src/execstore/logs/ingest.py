"""Appending log lines: validate a batch, resolve steps, then COPY (or executemany).

A batch is atomic: an entry that cannot be stored raises InvalidLogEntry naming it and
leaves the database as it was. A batch of up to 250 lines is checked and encoded whole
before anything is written; a larger one on PostgreSQL is written a chunk at a time
inside a savepoint while the next chunk is checked (``append_pipelined``), and a bad
entry rolls back what was sent. Safe transformations are applied on the way (and
documented): a message over its column's limit is cut with the ``…[truncated]`` marker,
NUL characters are removed from text and from metadata strings, a naive timestamp is
taken as UTC.

PostgreSQL writes with binary ``COPY`` through asyncpg on the unit's own connection, so
the lines commit or roll back with the unit. Steps resolve through a per-process cache
of the catalog; new catalog entries are committed in a short transaction of their own
(an id a row holds must never vanish with a rolled-back unit). A month without a
partition gets one on the spot, from a separate connection, and the COPY is retried
inside a savepoint; months that archival may be detaching always go through that
savepoint. SQLite writes with one ``executemany`` in the unit's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import json
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import asyncpg
import sqlalchemy as sa
from cachetools import LRUCache
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.errors import (
    DatabaseError,
    IntegrityViolation,
    InvalidLogEntry,
    shown,
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
from execstore.textlimits import fit_text, limit_of, strip_nul_json, surrogate_at

__all__ = [
    "COPY_COLUMNS",
    "NEW_LINE_COLUMNS",
    "PIPELINE_CHUNK",
    "PreparedLine",
    "StepKey",
    "append_pipelined",
    "encode_json",
    "entry_fields",
    "fill_steps",
    "known_steps",
    "line_rest",
    "line_time",
    "prepare_entries",
    "prepare_rows",
    "resolve_steps",
    "sqlite_write_lock",
    "step_key",
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
NEW_LINE_COLUMNS: Final = tuple(c for c in COPY_COLUMNS if c != "id")
"""Columns of a new line's tuple (the identity fills ``id``)."""
MESSAGE_LIMIT: Final = limit_of(m.ExecutionLogEntry.message) or 8000
STEP_NAME_LIMIT: Final = limit_of(m.ExecutionLogStep.name) or 500
_INT4: Final = 2**31
_NO_PARTITION: Final = "23514"  # check_violation: "no partition of relation ... found for row"
_LEVELS: Final = {level.value: level for level in LogLevel}
_LEVEL_FAST: Final[dict[Any, int]] = {
    **{level: int(level) for level in LogLevel},
    **{spelled: int(level) for level in LogLevel for spelled in (level.name, level.name.lower())},
}


def _standard_encoder() -> Callable[[Any], str]:
    def refuse(value: Any) -> Any:
        # Two documented conversions (a uuid as its text, an Enum member as its value:
        # what orjson, when installed, does by itself); anything else is not JSON.
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, enum.Enum):
            return value.value
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
    markers: dict[int, Any] = {}
    make = c_make_encoder(
        markers, refuse, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return _utf8(str(json.encoder.encode_basestring(value)))
        try:
            return _utf8("".join(make(value, 0)))
        except BaseException:
            # The C encoder leaves what it was in the middle of in its circular-reference
            # markers when it fails: encoding the same value again would then say
            # "Circular reference detected" (and the markers would keep it alive).
            markers.clear()
            raise

    return encode


def _utf8(text: str) -> str:
    """``text`` if it is UTF-8 encodable; a lone surrogate raises UnicodeEncodeError (a
    ValueError), which the driver would otherwise raise mid-write."""
    if not text.isascii():
        text.encode()
    return text


def _with_orjson(standard: Callable[[Any], str]) -> Callable[[Any], str]:
    """``standard``, fronted by orjson when it is installed (the ``fast`` extra).

    orjson writes a line's small metadata object about six times faster; what it does
    differently goes to ``standard``, which decides: anything it refuses (a subclass of
    str, int, dict or list, a datetime, a dataclass, a non-str key, an int beyond 64
    bits, invalid UTF-8) and any output holding ``null``, since orjson writes NaN and
    infinities as null where ``standard`` refuses them. The text may differ (``1e16``
    for ``1e+16``); the JSON value never does.
    """
    try:
        import orjson
    except ImportError:  # pragma: no cover - the fast extra is not installed
        return standard
    dumps = orjson.dumps
    options = (
        orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_SUBCLASS
    )

    def decline(value: Any) -> Any:
        raise TypeError("left to the standard encoder")

    def encode(value: Any) -> str:
        try:
            out = dumps(value, default=decline, option=options)
        except TypeError:  # orjson.JSONEncodeError included
            return standard(value)
        if b"null" in out:
            return standard(value)
        return out.decode()

    return encode


_standard = _standard_encoder()
_encode = _with_orjson(_standard)

try:
    # asyncpg's own UUID: COPY encodes it with a memcpy, a uuid.UUID through a Python
    # property call per row (``.bytes``), which is ~0.5 µs of every line's cost.
    from asyncpg.pgproto.pgproto import UUID as _DriverUUID
except ImportError:  # pragma: no cover - another asyncpg layout
    _DriverUUID = None


def _driver_uuid(value: uuid.UUID) -> uuid.UUID:
    """``value`` as asyncpg's UUID (a uuid.UUID subclass, equal to it)."""
    if _DriverUUID is None or type(value) is not uuid.UUID:
        return value
    return _DriverUUID(value.bytes)  # type: ignore[no-any-return]


def encode_json(value: Any) -> str:
    """Compact JSON text of ``value``, NULs removed; TypeError/ValueError if it is not JSON."""
    text = _encode(value)
    if "\\u0000" in text:
        text = _encode(strip_nul_json(value))
    return text


class PreparedLine(NamedTuple):
    """One validated line: everything but the step id, which needs the catalog."""

    timestamp: dt.datetime
    step: tuple[int, str | None]
    duration_ms: int | None
    level: int
    message: str
    metadata: str | None


def prepare_entries(
    entries: Sequence[NewLogEntry | Mapping[str, Any]], *, now: dt.datetime
) -> list[PreparedLine]:
    """Every entry validated and encoded, or InvalidLogEntry naming the first bad one.

    ``now`` (the clock's time) stamps the entries that carry no timestamp.
    """
    return [_prepare(index, entry, now) for index, entry in enumerate(entries)]


def prepare_rows(
    entries: Sequence[NewLogEntry | Mapping[str, Any]],
    *,
    now: dt.datetime,
    job_id: uuid.UUID,
    steps: Mapping[tuple[int, str | None], int],
    first: int = 0,
) -> tuple[list[tuple[Any, ...]], dict[tuple[int, str | None], list[int]], set[dt.datetime]]:
    """``append``'s hot path: every entry validated, in one pass, as a row to COPY.

    ``first`` is the batch position of ``entries[0]``: errors and the row indexes
    returned count from it.

    Returns the rows (:data:`NEW_LINE_COLUMNS` order), the steps ``steps`` did not know
    (with the rows that need them: their step id is None until resolved) and the months
    the rows fall in. The same checks and fixes as :func:`prepare_entries`, inlined:
    every field has a fast path for the usual, already-valid value and falls back to the
    validating function, which fixes or refuses the rest.
    """
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    missing: dict[tuple[int, str | None], list[int]] = {}
    months: set[tuple[int, int]] = set()
    last_year = last_month = 0
    utc = dt.UTC
    stamp_type = dt.datetime
    lookup = steps.get
    level_of = _LEVEL_FAST.get
    encode = _encode
    message_limit = MESSAGE_LIMIT
    job = _driver_uuid(job_id)
    # Lines come in runs of one step: the last step's key and id are reused while the
    # entry holds the very same (validated) index and name objects.
    last_index: Any = None
    last_name: Any = None
    last_key: tuple[int, str | None] | None = None
    last_step: int | None = None
    message: Any
    level: Any
    metadata: Any
    for index, entry in enumerate(entries, first):
        if type(entry) is NewLogEntry:
            message, level, step_index = entry.message, entry.level, entry.step_index
            step_name, metadata = entry.step_name, entry.metadata
            timestamp, duration = entry.timestamp, entry.duration_ms
        else:
            message, level, step_index, step_name, metadata, timestamp, duration = entry_fields(
                index, entry
            )
        if type(message) is not str:
            raise InvalidLogEntry(index, f"message must be text, not {type(message).__name__}")
        if not message.isascii():
            _text(index, "message", message)
        if len(message) > message_limit or "\x00" in message:
            message = fit_text(message, message_limit) or ""
        if type(timestamp) is not stamp_type or timestamp.tzinfo is not utc:
            timestamp = _timestamp(index, timestamp, now)
        if timestamp.month != last_month or timestamp.year != last_year:
            last_year, last_month = timestamp.year, timestamp.month
            months.add((last_year, last_month))
        if step_index is not last_index or step_name is not last_name or last_key is None:
            last_index, last_name = step_index, step_name
            if type(step_index) is not int or not -_INT4 <= step_index < _INT4:
                step_index = _int(index, "step_index", step_index)
            if step_name is not None and (
                type(step_name) is not str
                or len(step_name) > STEP_NAME_LIMIT
                or "\x00" in step_name
                or not step_name.isascii()
            ):
                step_name = _step_name(index, step_name)
            last_key = (step_index, step_name)
            last_step = lookup(last_key)
        if duration is not None and (type(duration) is not int or not -_INT4 <= duration < _INT4):
            duration = _int(index, "duration_ms", duration)
        # Only text and members are looked up: anything else may not even be hashable.
        level_value = level_of(level) if type(level) is str or type(level) is LogLevel else None
        if level_value is None:
            level_value = _level(index, level)
        if metadata is not None:
            try:
                text = encode(metadata)
            except (TypeError, ValueError, RecursionError):
                text = None  # _metadata says why
            metadata = (
                text if text is not None and "\\u0000" not in text else _metadata(index, metadata)
            )
        if last_step is None:
            missing.setdefault(last_key, []).append(index)
        append((timestamp, job, last_step, duration, level_value, message, metadata))
    return rows, missing, {dt.datetime(y, mo, 1, tzinfo=utc) for y, mo in months}


def _field(entry: Mapping[str, Any], snake: str, camel: str, default: Any = None) -> Any:
    if snake in entry:
        return entry[snake]
    return entry.get(camel, default)


Fields = tuple[Any, Any, Any, Any, Any, Any, Any]
"""An entry's raw (message, level, step_index, step_name, metadata, timestamp, duration)."""


def entry_fields(index: int, entry: NewLogEntry | Mapping[str, Any]) -> Fields:
    """The raw fields of one entry (a NewLogEntry or a mapping, snake or camel case)."""
    if isinstance(entry, NewLogEntry):
        return (
            entry.message,
            entry.level,
            entry.step_index,
            entry.step_name,
            entry.metadata,
            entry.timestamp,
            entry.duration_ms,
        )
    if isinstance(entry, Mapping):
        return (
            entry.get("message"),
            entry.get("level", LogLevel.INFO),
            _field(entry, "step_index", "stepIndex", 0),
            _field(entry, "step_name", "stepName"),
            entry.get("metadata"),
            entry.get("timestamp"),
            _field(entry, "duration_ms", "durationMs", entry.get("duration")),
        )
    raise InvalidLogEntry(index, f"expected NewLogEntry or a mapping, not {type(entry).__name__}")


# Each field below has a fast path for the usual, already-valid value (a type check or
# two) and falls back to the validating function, which fixes or refuses the rest.


def step_key(index: int, step_index: Any, step_name: Any) -> tuple[int, str | None]:
    """The validated (step index, step name) of an entry."""
    if type(step_index) is not int or not -_INT4 <= step_index < _INT4:
        step_index = _int(index, "step_index", step_index)
    if step_name is not None and (
        type(step_name) is not str
        or len(step_name) > STEP_NAME_LIMIT
        or "\x00" in step_name
        or not step_name.isascii()
    ):
        step_name = _step_name(index, step_name)
    return step_index, step_name


def line_time(index: int, timestamp: Any, now: dt.datetime) -> dt.datetime:
    """The validated timestamp of an entry (aware, UTC; ``now`` when absent)."""
    if type(timestamp) is not dt.datetime or timestamp.tzinfo is not dt.UTC:
        timestamp = _timestamp(index, timestamp, now)
    return timestamp  # type: ignore[no-any-return]


def line_rest(
    index: int, message: Any, level: Any, duration: Any, metadata: Any
) -> tuple[int | None, int, str, str | None]:
    """The validated (duration_ms, level, message, metadata JSON) of an entry."""
    if type(message) is not str:
        raise InvalidLogEntry(index, f"message must be text, not {type(message).__name__}")
    if not message.isascii():
        _text(index, "message", message)
    if len(message) > MESSAGE_LIMIT or "\x00" in message:
        message = fit_text(message, MESSAGE_LIMIT) or ""
    if duration is not None and (type(duration) is not int or not -_INT4 <= duration < _INT4):
        duration = _int(index, "duration_ms", duration)
    level_value = _LEVEL_FAST.get(level) if type(level) in (str, LogLevel) else None
    return (
        duration,
        level_value if level_value is not None else _level(index, level),
        message,
        None if metadata is None else _metadata(index, metadata),
    )


def _prepare(index: int, entry: NewLogEntry | Mapping[str, Any], now: dt.datetime) -> PreparedLine:
    message, level, step_index, step_name, metadata, timestamp, duration = entry_fields(
        index, entry
    )
    duration, level_value, message, meta = line_rest(index, message, level, duration, metadata)
    return PreparedLine(
        line_time(index, timestamp, now),
        step_key(index, step_index, step_name),
        duration,
        level_value,
        message,
        meta,
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
        raise InvalidLogEntry(index, f"{name} must be an integer, not {shown(value)}")
    if not -_INT4 <= value < _INT4:
        raise InvalidLogEntry(index, f"{name} {shown(value)} is out of range")
    return value


def _step_name(index: int, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidLogEntry(index, f"step_name must be text, not {type(value).__name__}")
    return fit_text(_text(index, "step_name", value), STEP_NAME_LIMIT)


def _text(index: int, name: str, value: str) -> str:
    """``value`` if it can be stored (UTF-8 encodable), else InvalidLogEntry: a lone
    surrogate would otherwise fail in the driver, mid-batch, untyped."""
    at = surrogate_at(value)
    if at is not None:
        raise InvalidLogEntry(
            index, f"{name} holds a lone surrogate at position {at}: not storable text"
        )
    return value


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
    raise InvalidLogEntry(index, f"unknown level {shown(value)}")


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

    workflows: LRUCache[uuid.UUID, dict[tuple[int, str | None], int]] = field(
        default_factory=lambda: LRUCache(maxsize=10_000)
    )
    """Per workflow, the catalog ids of its steps: (step index, step name) -> id."""
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
    cache = _caches(session).workflows
    found: dict[StepKey, int] = {}
    for key in wanted:
        known = cache.get(key[0])
        if known is not None and (step := known.get(key[1:])) is not None:
            found[key] = step
    missing = wanted - found.keys()
    if missing:
        async with sessions() as own, own.begin():
            resolved = await _resolve_in(own, missing, dialect="postgresql")
        found.update(resolved)
        for (workflow, index, name), step in resolved.items():
            known = cache.get(workflow)
            if known is None:
                known = cache[workflow] = {}
            known[(index, name)] = step
    return found


def known_steps(session: AsyncSession, workflow: uuid.UUID) -> Mapping[tuple[int, str | None], int]:
    """The catalog ids this process knows for ``workflow``'s steps (PostgreSQL; else {})."""
    if session.get_bind().dialect.name != "postgresql":
        return {}
    return _caches(session).workflows.get(workflow) or {}


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
    caches = _caches(session)
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
    caches = _caches(session)
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


async def fill_steps(
    session: AsyncSession,
    sessions: async_sessionmaker[AsyncSession] | None,
    workflow: uuid.UUID,
    rows: list[tuple[Any, ...]],
    missing: Mapping[tuple[int, str | None], list[int]],
) -> None:
    """Give the rows :func:`prepare_rows` left without a step id (``missing``: step key ->
    row indexes) their ids, adding steps this process has not seen to the catalog (in a
    committed transaction of their own on PostgreSQL)."""
    if not missing:
        return
    ids = await resolve_steps(session, sessions, {(workflow, *key) for key in missing})
    for key, indexes in missing.items():
        step = ids[(workflow, *key)]
        for i in indexes:
            row = rows[i]
            rows[i] = (row[0], row[1], step, *row[3:])


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
