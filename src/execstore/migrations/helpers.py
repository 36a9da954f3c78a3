"""Building blocks the revisions share, frozen as written: types, names, renames, guards.

A revision states its own tables, columns, indexes, triggers and data steps and imports
only Alembic, SQLAlchemy, the standard library, :mod:`execstore.errors` and this module
(``tests/foundation/test_migration_imports.py`` holds them to it). So this module is a
snapshot too: nothing here may follow the models or a capability as they change. A
revision that needs something new adds it here under a new name; what is here stays.

Every helper works on PostgreSQL and SQLite; where SQLite cannot do a thing in place
(rename an index, change a column type) it rebuilds the table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

from execstore.errors import BackfillIncomplete, DowngradeRefused

__all__ = [
    "BIGID",
    "INET",
    "INT_ARRAY",
    "JSONB",
    "LEGACY_TIMESTAMP",
    "LEGACY_UUID_PATTERN",
    "NAMING_CONVENTION",
    "SMALLINT_ARRAY",
    "TEXT_ARRAY",
    "TIMESTAMPTZ",
    "TRUNCATION_MARKER",
    "UUID",
    "UUID_ARRAY",
    "create_table",
    "dialect",
    "downgrade_refused",
    "drop_tables",
    "legacy_uuid_pg",
    "legacy_uuid_sql",
    "legacy_uuid_text",
    "migration_now",
    "refuse_if_rows",
    "rename_table",
    "require_backfill_complete",
    "rows_refused",
    "truncate_overlong",
]

log = logging.getLogger("execstore.migrations")

# -- names and types ---------------------------------------------------------------------

NAMING_CONVENTION: Final[Mapping[str, str]] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""How unnamed constraints and indexes are named (as the schema was first written)."""

UUID: Final = postgresql.UUID(as_uuid=True).with_variant(sa.Text(), "sqlite")
"""Native ``uuid`` on PostgreSQL; hyphenated text on SQLite."""
TIMESTAMPTZ: Final = sa.DateTime(timezone=True)
"""``timestamptz`` on PostgreSQL; ``DATETIME`` (UTC text) on SQLite."""
JSONB: Final = postgresql.JSONB().with_variant(sa.JSON(), "sqlite")
UUID_ARRAY: Final = postgresql.ARRAY(postgresql.UUID(as_uuid=True)).with_variant(
    sa.JSON(), "sqlite"
)
INT_ARRAY: Final = postgresql.ARRAY(sa.Integer()).with_variant(sa.JSON(), "sqlite")
SMALLINT_ARRAY: Final = postgresql.ARRAY(sa.SmallInteger()).with_variant(sa.JSON(), "sqlite")
INET: Final = postgresql.INET().with_variant(sa.String(45), "sqlite")
BIGID: Final = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""A bigint id; ``INTEGER`` on SQLite, where only that fills itself in."""
LEGACY_TIMESTAMP: Final = postgresql.TIMESTAMP(precision=3).with_variant(sa.DateTime(), "sqlite")
"""The legacy schema's ``timestamp(3)`` without time zone."""
TEXT_ARRAY: Final = postgresql.ARRAY(sa.Text()).with_variant(sa.JSON(), "sqlite")

TRUNCATION_MARKER: Final = "…[truncated]"
"""What ends a value ``truncate_overlong`` cut (the same marker the models write)."""


def dialect() -> str:
    """``postgresql`` or ``sqlite``."""
    return op.get_bind().dialect.name


def migration_now() -> dt.datetime:
    """Now, in UTC, for a step that depends on the date (partitions to create ahead).

    The runner hands its clock's reading over as ``config.attributes["now"]`` (env.py
    supplies the wall clock's when a migration runs some other way): a revision never
    reads the time itself.
    """
    given = context.config.attributes["now"]
    if not isinstance(given, dt.datetime) or given.tzinfo is None:
        raise TypeError(f'config.attributes["now"] must be an aware datetime, not {given!r}')
    return given.astimezone(dt.UTC)


# -- tables ------------------------------------------------------------------------------


def create_table(name: str, *elements: Any, **kw: Any) -> sa.Table:
    """Create table ``name`` from ``elements`` (columns, constraints, indexes); the table.

    Unnamed constraints and indexes are named by :data:`NAMING_CONVENTION`; tables the
    foreign keys name only need to exist in the database.
    """
    metadata = sa.MetaData(naming_convention=dict(NAMING_CONVENTION))
    table = sa.Table(name, metadata, *elements, **kw)
    for fk in list(table.foreign_keys):
        target, column = fk.target_fullname.rsplit(".", 1)
        referred = metadata.tables.get(target)
        if referred is None:
            referred = sa.Table(target, metadata)
        if column not in referred.c:
            referred.append_column(sa.Column(column, sa.Integer()))
    table.create(op.get_bind())
    return table


def drop_tables(*names: str) -> None:
    """Drop tables (dependents first: pass them in reverse creation order)."""
    for name in names:
        op.drop_table(name)


def rename_table(old: str, new: str) -> None:
    """Rename table ``old`` to ``new``; its constraints and indexes follow the new name.

    A constraint or index named after the table (``pk_old``, ``ix_old_job_id``) is
    renamed with it, so ``new`` looks as if it had been created under its new name.
    """
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.rename_table(old, new)
        indexes = bind.exec_driver_sql(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            f"WHERE i.indrelid = '{new}'::regclass"
        ).scalars()
        for name in list(indexes):
            if old in name:
                # Renaming the index renames the primary-key/unique constraint it backs.
                op.execute(f"ALTER INDEX {name} RENAME TO {name.replace(old, new, 1)}")
        return
    # SQLite keeps constraint names inside the table's SQL and cannot rename an index:
    # the table is created again from its own SQL under the new names.
    table_sql = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :name"),
        {"name": old},
    ).scalar_one()
    index_sql = (
        bind.execute(
            sa.text(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :name "
                "AND sql IS NOT NULL ORDER BY name"
            ),
            {"name": old},
        )
        .scalars()
        .all()
    )
    created = re.sub(rf'^CREATE TABLE\s+"?{old}"?\s*\(', f"CREATE TABLE {new} (", table_sql)
    created = re.sub(
        r"CONSTRAINT\s+(\w+)",
        lambda m: "CONSTRAINT " + m.group(1).replace(old, new, 1),
        created,
    )
    bind.exec_driver_sql(created)
    bind.exec_driver_sql(f'INSERT INTO "{new}" SELECT * FROM "{old}"')
    bind.exec_driver_sql(f'DROP TABLE "{old}"')
    for sql in index_sql:
        index = re.match(r'CREATE (?:UNIQUE )?INDEX\s+"?(\w+)"?', sql)
        assert index is not None, sql
        renamed = sql.replace(index.group(1), index.group(1).replace(old, new, 1), 1)
        bind.exec_driver_sql(re.sub(rf'\bON\s+"?{old}"?\s*\(', f"ON {new} (", renamed))


# -- guards ------------------------------------------------------------------------------


def rows_refused(
    bind: sa.Connection, tables: Iterable[str], where: Mapping[str, str] | None = None
) -> list[str]:
    """Those of ``tables`` that exist and hold a row a downgrade would lose.

    ``where`` narrows a table to the rows that would be lost (SQL over that table's
    columns); without an entry every row counts.
    """
    found = []
    present = set(sa.inspect(bind).get_table_names())
    for table in tables:
        if table not in present:
            continue
        condition = (where or {}).get(table)
        sql = f"SELECT 1 FROM {table}" + (f" WHERE {condition}" if condition else "") + " LIMIT 1"
        if bind.exec_driver_sql(sql).first() is not None:
            found.append(table)
    return found


def refuse_if_rows(
    revision: str, tables: Iterable[str], where: Mapping[str, str] | None = None
) -> None:
    """Raise DowngradeRefused, naming them, if any of ``tables`` holds rows going down
    ``revision`` would lose (see :func:`rows_refused`)."""
    found = rows_refused(op.get_bind(), tables, where)
    if found:
        raise downgrade_refused(revision, found)


def downgrade_refused(revision: str, tables: Iterable[str]) -> DowngradeRefused:
    """The error refusing to go below ``revision`` while ``tables`` hold rows."""
    return DowngradeRefused(
        f"going below {revision} would drop rows the older schema has no place for, in "
        f"{', '.join(tables)}; archive or delete them first (nothing was changed)"
    )


def require_backfill_complete(
    bind: sa.Connection, name: str, *, legacy_table: str, how: str
) -> None:
    """Raise BackfillIncomplete (nothing changed) unless backfill ``name`` is complete.

    What every contract revision checks before it drops ``legacy_table``: the table is
    gone or empty (nothing to backfill), or ``backfill_completions`` holds the row
    ``name`` that the backfill wrote when it moved every row and verified the result,
    and the table still holds the rows it held then (``details["legacy_rows"]``): a
    table changed since needs the backfill run again.
    """
    inspector = sa.inspect(bind)
    if not inspector.has_table(legacy_table):
        return
    held = int(bind.exec_driver_sql(f"SELECT count(*) FROM {legacy_table}").scalar_one())
    if not held:
        return
    how = f"{how}, then upgrade again (nothing was changed)"
    completions = sa.table(
        "backfill_completions", sa.column("name"), sa.column("details", sa.JSON())
    )
    found = bind.execute(
        sa.select(completions.c.details).where(completions.c.name == name)
    ).scalar_one_or_none()
    if found is None:
        raise BackfillIncomplete(
            f"{legacy_table} holds {held} row(s) and the {name} backfill has not recorded "
            f"its completion: {how}"
        )
    if found.get("legacy_rows") != held:
        raise BackfillIncomplete(
            f"{legacy_table} changed since the {name} backfill completed (then "
            f"{found.get('legacy_rows')} row(s), now {held}): {how}"
        )


# -- data steps --------------------------------------------------------------------------


def truncate_overlong(table: str, column: str, limit: int) -> int:
    """Strip NULs and cut values longer than ``limit`` with the marker; the rows changed."""
    bind = op.get_bind()
    keep = limit - len(TRUNCATION_MARKER)
    params = {"keep": keep, "marker": TRUNCATION_MARKER, "limit": limit}
    if bind.dialect.name == "sqlite":
        # SQLite's text functions (length, replace) stop at the first NUL, so NULs are
        # found as bytes and removed in Python before lengths are measured.
        dirty = bind.exec_driver_sql(
            f"SELECT rowid, {column} FROM {table} WHERE instr(CAST({column} AS BLOB), x'00') > 0"
        ).all()
        for rowid, value in dirty:
            bind.execute(
                sa.text(f"UPDATE {table} SET {column} = :value WHERE rowid = :rowid"),
                {"value": value.replace("\x00", ""), "rowid": rowid},
            )
        long_rows = bind.execute(
            sa.text(
                f"UPDATE {table} SET {column} = substr({column}, 1, :keep) || :marker "
                f"WHERE length({column}) > :limit RETURNING rowid"
            ),
            params,
        ).scalars()
        changed = len({r for r, _ in dirty} | set(long_rows))
    else:
        changed = bind.execute(
            sa.text(
                f"UPDATE {table} SET {column} = left({column}, :keep) || :marker "
                f"WHERE char_length({column}) > :limit"
            ),
            params,
        ).rowcount
    if changed:
        log.warning("%s.%s: %d row(s) fitted to %d characters", table, column, changed, limit)
    return changed


# -- legacy text ids ---------------------------------------------------------------------
# The mapping of a legacy text id to a uuid, as it was when the ids were first converted:
# text that spells a uuid (any case, optional braces, hyphens at the usual places or
# none) is that uuid; anything else is md5(text) read as a uuid. execstore.ids holds the
# same mapping for the running code; a test keeps the two equal.

_HEX: Final = r"[0-9a-fA-F]"
_UUID_BODY: Final = rf"{_HEX}{{8}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}|{_HEX}{{32}}"
LEGACY_UUID_PATTERN: Final = rf"^(?:\{{(?:{_UUID_BODY})\}}|(?:{_UUID_BODY}))$"
_UUID_TEXT: Final = re.compile(LEGACY_UUID_PATTERN)
_SQLITE_FUNCTION: Final = "execstore_migration_legacy_uuid"


def legacy_uuid_text(text: str | None) -> str | None:
    """The uuid (canonical text) legacy id ``text`` stands for; None stays None."""
    if text is None:
        return None
    if _UUID_TEXT.match(text):
        return str(uuid.UUID(hex=text.strip("{}").replace("-", "")))
    return str(uuid.UUID(hashlib.md5(text.encode("utf-8")).hexdigest()))


def legacy_uuid_pg(column: str) -> str:
    """PostgreSQL SQL for the uuid of text ``column`` (the form its expression indexes use)."""
    return (
        f"CASE WHEN ({column} ~ '{LEGACY_UUID_PATTERN}') "
        f"THEN CAST(translate({column}, '{{}}-', '') AS UUID) "
        f"ELSE CAST(md5({column}) AS UUID) END"
    )


def legacy_uuid_sql(bind: sa.Connection, column: str) -> str:
    """SQL for the uuid of text ``column`` on ``bind``'s backend.

    A uuid on PostgreSQL; canonical uuid text on SQLite, through a function this
    registers on the migration's connection.
    """
    if bind.dialect.name == "postgresql":
        return legacy_uuid_pg(column)
    driver = bind.connection.dbapi_connection
    assert driver is not None
    driver.create_function(_SQLITE_FUNCTION, 1, legacy_uuid_text, deterministic=True)
    return f"{_SQLITE_FUNCTION}({column})"
