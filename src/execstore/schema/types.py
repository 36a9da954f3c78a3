"""Column types shared by the legacy and optimized schemas, portable across both backends.

- :class:`GUID`: native ``uuid`` (16 B) on PostgreSQL; the same hyphenated text a legacy
  database already holds on SQLite, so adopting a SQLite database needs no id rewrite.
- :class:`BoundedString`: ``VARCHAR(n)`` that truncates (with a marker) and strips NULs on
  every bind; see :mod:`execstore.textlimits`.
- :data:`JSONDoc`: ``jsonb`` on PostgreSQL, JSON text on SQLite; NULs removed on bind.
- :func:`uuid_array`: a PostgreSQL ``uuid[]``, a JSON array on SQLite.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from execstore.textlimits import fit_text, strip_nul, strip_nul_json

__all__ = [
    "GUID",
    "BoundedString",
    "JSONDoc",
    "SafeText",
    "UtcTimestamp",
    "uuid_array",
]


class GUID(TypeDecorator[uuid.UUID]):
    """A UUID: native on PostgreSQL, hyphenated text on SQLite."""

    impl = sa.Uuid
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.UUID(as_uuid=True))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        as_uuid = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        return as_uuid if dialect.name == "postgresql" else str(as_uuid)

    def process_result_value(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        if value is None:
            return None
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


class UtcTimestamp(TypeDecorator[dt.datetime]):
    """``timestamptz``: written as UTC and read back timezone-aware, on every backend.

    PostgreSQL converts by itself; SQLite stores text without an offset, so an aware value
    is converted to UTC before it is written (a naive value is taken as UTC) and values
    come back with ``tzinfo=UTC`` instead of naive.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return (
                value.astimezone(dt.UTC)
                if dialect.name == "postgresql"
                else (value.astimezone(dt.UTC).replace(tzinfo=None))
            )
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if not isinstance(value, dt.datetime):
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class BoundedString(TypeDecorator[str]):
    """``VARCHAR(length)`` that fits every bound value to the length (marker, no NULs)."""

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return fit_text(value, self.length)


class SafeText(TypeDecorator[str]):
    """Unbounded ``TEXT`` that strips NUL characters on bind."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else strip_nul(value)


class _SafeJSON(TypeDecorator[Any]):
    # Python None is SQL NULL (``WHERE col IS NULL`` finds it), never the JSON text 'null'.
    impl = sa.JSON(none_as_null=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB(none_as_null=True))
        return dialect.type_descriptor(sa.JSON(none_as_null=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return strip_nul_json(value)


JSONDoc = _SafeJSON
"""A JSON document column: ``jsonb`` on PostgreSQL, JSON on SQLite."""


class _UUIDArray(TypeDecorator[list[uuid.UUID]]):
    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.ARRAY(postgresql.UUID(as_uuid=True)))
        return dialect.type_descriptor(sa.JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        ids = [v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)) for v in value]
        return ids if dialect.name == "postgresql" else [str(i) for i in ids]

    def process_result_value(self, value: Any, dialect: Dialect) -> list[uuid.UUID] | None:
        return None if value is None else [uuid.UUID(str(v)) for v in value]


def uuid_array() -> TypeEngine[Any]:
    """``uuid[]`` on PostgreSQL, a JSON array of strings on SQLite; read as UUIDs."""
    return _UUIDArray()
