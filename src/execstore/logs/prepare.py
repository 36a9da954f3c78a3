"""Validating log entries: each field checked, fixed where that is safe, or refused.

A batch is atomic: an entry that cannot be stored raises InvalidLogEntry naming it.
Safe transformations are applied on the way (and documented): a message over its
column's limit is cut with the ``…[truncated]`` marker, NUL characters are removed from
text and from metadata strings, a naive timestamp is taken as UTC. Each field has a fast
path for the usual, already-valid value (a type check or two) and falls back to a
validating function, which fixes or refuses the rest.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple

from execstore.errors import InvalidLogEntry, shown
from execstore.logs.encoding import driver_uuid, encode_json, fast_encode
from execstore.logs.types import NewLogEntry
from execstore.schema import models as m
from execstore.schema.enums import LogLevel
from execstore.textlimits import fit_text, limit_of, surrogate_at

__all__ = [
    "MESSAGE_LIMIT",
    "STEP_NAME_LIMIT",
    "PreparedLine",
    "entry_fields",
    "line_rest",
    "line_time",
    "prepare_entries",
    "prepare_entry",
    "prepare_rows",
    "step_key",
]

"""Columns of a new line's tuple (the identity fills ``id``)."""
MESSAGE_LIMIT: Final = limit_of(m.ExecutionLogEntry.message) or 8000
STEP_NAME_LIMIT: Final = limit_of(m.ExecutionLogStep.name) or 500
_INT4: Final = 2**31
_LEVELS: Final = {level.value: level for level in LogLevel}
_LEVEL_FAST: Final[dict[Any, int]] = {
    **{level: int(level) for level in LogLevel},
    **{spelled: int(level) for level in LogLevel for spelled in (level.name, level.name.lower())},
}


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
    return [prepare_entry(index, entry, now) for index, entry in enumerate(entries)]


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

    Returns the rows (``ingest.NEW_LINE_COLUMNS`` order), the steps ``steps`` did not know
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
    encode = fast_encode
    message_limit = MESSAGE_LIMIT
    job = driver_uuid(job_id)
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


def prepare_entry(
    index: int, entry: NewLogEntry | Mapping[str, Any], now: dt.datetime
) -> PreparedLine:
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
