"""Public types of execution logs: what goes in and what comes out."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from execstore.repository import PublicModel, UtcDateTime
from execstore.schema.enums import LogLevel

__all__ = [
    "LogEntry",
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


class LogRetention(PublicModel):
    """How long an organization's archived logs are kept."""

    organization_id: uuid.UUID
    retention_days: int
    hot_days: int
    is_default: bool
    """True when the organization has no setting of its own (the configured default)."""
