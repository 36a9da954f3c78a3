"""Public types of execution logs: what goes in, what comes out, and the page cursor."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from execstore.errors import InvalidLogQuery
from execstore.repository import PublicModel, UtcDateTime
from execstore.schema.enums import LogLevel

__all__ = [
    "LogCursor",
    "LogEntry",
    "LogPage",
    "LogRetention",
    "NewLogEntry",
]


@dataclass(frozen=True, slots=True)
class NewLogEntry:
    """One line to append (a plain mapping with the same keys works too).

    ``level`` is a :class:`LogLevel` or its name (``"warning"`` and ``"fatal"`` are
    understood); ``timestamp`` defaults to now and a naive one is taken as UTC;
    ``metadata`` must be JSON-encodable (else the whole batch is refused).
    """

    message: str
    level: LogLevel | str = LogLevel.INFO
    step_index: int = 0
    step_name: str | None = None
    metadata: Mapping[str, Any] | None = None
    timestamp: dt.datetime | None = None
    duration_ms: int | None = None


class LogEntry(PublicModel):
    """One stored log line, hot or archived (the caller cannot tell and need not)."""

    id: int
    job_id: uuid.UUID
    timestamp: UtcDateTime
    level: LogLevel
    step_index: int
    step_name: str | None = None
    message: str
    metadata: dict[str, Any] | None = None
    duration_ms: int | None = None


class LogPage(PublicModel):
    """A page of a job's log in order; pass ``next_cursor`` as ``after`` for the next."""

    entries: list[LogEntry]
    next_cursor: str | None = None


class LogRetention(PublicModel):
    """How long an organization's archived logs are kept."""

    organization_id: uuid.UUID
    retention_days: int
    hot_days: int
    is_default: bool
    """True when the organization has no setting of its own (the configured default)."""


@dataclass(frozen=True, slots=True, order=True)
class LogCursor:
    """A position in a job's log: after the line at (timestamp in microseconds, id)."""

    micros: int
    id: int

    def encode(self) -> str:
        """The opaque text form handed to callers."""
        return f"v1.{self.micros}.{self.id}"

    @classmethod
    def decode(cls, text: str) -> LogCursor:
        """The cursor ``text`` stands for; InvalidLogQuery if it is not one of ours."""
        parts = text.split(".") if isinstance(text, str) else []
        try:
            if len(parts) != 3 or parts[0] != "v1":
                raise ValueError(text)
            return cls(int(parts[1]), int(parts[2]))
        except ValueError as exc:
            raise InvalidLogQuery(f"not a log cursor: {text!r}") from exc

    @classmethod
    def of(cls, timestamp: dt.datetime, id: int) -> LogCursor:
        """The cursor just after the line at ``timestamp`` with ``id``."""
        return cls(to_micros(timestamp), id)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_micros(when: dt.datetime) -> int:
    """Microseconds since the epoch (a naive value is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> dt.datetime:
    """The UTC datetime ``micros`` microseconds after the epoch."""
    return _EPOCH + dt.timedelta(microseconds=micros)
