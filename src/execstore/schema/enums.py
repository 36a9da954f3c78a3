"""Small-integer enums: a status or level costs 2 bytes, not a word of text."""

from __future__ import annotations

import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from execstore.config import Codec

__all__ = ["CodecColumn", "ExecutionStatus", "IntEnumColumn", "LogLevel"]


class ExecutionStatus(enum.IntEnum):
    """Where a job's execution stands."""

    PENDING = 0
    QUEUED = 1
    RUNNING = 2
    COMPLETED = 3
    FAILED = 4
    CANCELLED = 5
    TIMED_OUT = 6

    @classmethod
    def parse(cls, text: str) -> ExecutionStatus:
        """The status named by ``text`` (case-insensitive; 'timeout' is TIMED_OUT)."""
        key = text.strip().upper().replace("-", "_").replace(" ", "_")
        aliases = {"TIMEOUT": "TIMED_OUT", "CANCELED": "CANCELLED", "SUCCESS": "COMPLETED"}
        return cls[aliases.get(key, key)]


class LogLevel(enum.IntEnum):
    """Execution log severity, spaced like Python's logging levels."""

    DEBUG = 10
    INFO = 20
    WARN = 30
    ERROR = 40

    @classmethod
    def parse(cls, text: str) -> LogLevel:
        """The level named by ``text`` ('warning' is WARN, 'fatal'/'critical' are ERROR)."""
        key = text.strip().upper()
        aliases = {"WARNING": "WARN", "FATAL": "ERROR", "CRITICAL": "ERROR", "TRACE": "DEBUG"}
        return cls[aliases.get(key, key)]


class IntEnumColumn(TypeDecorator[enum.IntEnum]):
    """A ``smallint`` column read and written as an IntEnum."""

    impl = sa.SmallInteger
    cache_ok = True

    def __init__(self, enum_type: type[enum.IntEnum]) -> None:
        super().__init__()
        self.enum_type = enum_type

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else int(self.enum_type(value))

    def process_result_value(self, value: Any, dialect: Dialect) -> enum.IntEnum | None:
        return None if value is None else self.enum_type(value)


class CodecColumn(TypeDecorator[Codec]):
    """A pointer row's ``codec``: a ``smallint`` (:attr:`Codec.code`) read as a :class:`Codec`."""

    impl = sa.SmallInteger
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> int | None:
        return None if value is None else Codec.of(value).code

    def process_result_value(self, value: Any, dialect: Dialect) -> Codec | None:
        return None if value is None else Codec.of(value)
