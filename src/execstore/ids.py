"""Legacy text ids -> uuids: the one mapping every migration, backfill and archival job uses.

The orchestration service's ids are text: canonical uuids, uuids in upper case or braces
(``{...}``) or without hyphens, and cuids (Prisma's default id). execstore stores native
uuids, so each legacy id maps to exactly one uuid:

- text that spells a uuid (32 hex digits, hyphens only at the usual places or nowhere,
  optionally wrapped in one pair of braces, any case) is that uuid;
- anything else (a cuid, a slug) is ``md5(text)`` read as a uuid — deterministic, so a
  job id and every reference to it map to the same uuid wherever they are read.

:func:`legacy_uuid` is the mapping; :func:`legacy_uuid_sql` is the same mapping as SQL
(PostgreSQL: an expression of built-ins; SQLite: the Python function registered on every
connection), for the places that must match legacy rows inside the database. The tests
check the two agree on both backends.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any, Final

import sqlalchemy as sa

__all__ = ["LEGACY_UUID_PATTERN", "SQLITE_FUNCTION", "legacy_uuid", "legacy_uuid_sql"]

_HEX: Final = r"[0-9a-fA-F]"
_UUID_BODY: Final = rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}|{_HEX}{{32}}"
LEGACY_UUID_PATTERN: Final = rf"^(?:\{{(?:{_UUID_BODY})\}}|(?:{_UUID_BODY}))$"
"""Text that is a uuid (POSIX ERE syntax, valid in Python and PostgreSQL alike)."""

_UUID_TEXT: Final = re.compile(LEGACY_UUID_PATTERN)
SQLITE_FUNCTION: Final = "execstore_legacy_uuid"


def legacy_uuid(text: str | uuid.UUID) -> uuid.UUID:
    """The uuid a legacy text id stands for (see the module docstring)."""
    if isinstance(text, uuid.UUID):
        return text
    if not isinstance(text, str):
        raise TypeError(f"a legacy id is text, not {type(text).__name__}")
    if _UUID_TEXT.match(text):
        return uuid.UUID(hex=text.strip("{}").replace("-", ""))
    return uuid.UUID(hashlib.md5(text.encode("utf-8")).hexdigest())


def legacy_uuid_text(text: str | None) -> str | None:
    """:func:`legacy_uuid` as canonical text (None stays None): SQLite's registered function."""
    return None if text is None else str(legacy_uuid(text))


def legacy_uuid_sql(column: Any, dialect: str) -> sa.ColumnElement[Any]:
    """SQL computing :func:`legacy_uuid` of a text ``column``.

    A uuid on PostgreSQL; canonical uuid text on SQLite (where ids are text anyway).
    """
    if dialect == "postgresql":
        return sa.case(
            (
                column.op("~")(LEGACY_UUID_PATTERN),
                sa.cast(sa.func.translate(column, "{}-", ""), sa.Uuid),
            ),
            else_=sa.cast(sa.func.md5(column), sa.Uuid),
        )
    return sa.func.execstore_legacy_uuid(column)
