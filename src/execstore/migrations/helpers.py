"""Building blocks the revisions share: per-dialect renames, type changes and guards.

Kept apart from the revision files so each revision reads as a list of what it does.
Every helper works on PostgreSQL and SQLite; where SQLite cannot do a thing in place
(rename an index, change a column type) it rebuilds the table in batch mode.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

from execstore.errors import DowngradeRefused
from execstore.schema.base import new_metadata, transitional_copy
from execstore.textlimits import TRUNCATION_MARKER

__all__ = [
    "dialect",
    "refuse_if_rows",
    "rename_to_transitional",
    "restore_from_transitional",
    "truncate_overlong",
]

log = logging.getLogger("execstore.migrations")


def dialect() -> str:
    """``postgresql`` or ``sqlite``."""
    return op.get_bind().dialect.name


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


def refuse_if_rows(*tables: str) -> None:
    """Raise DowngradeRefused if any of ``tables`` holds rows the older schema cannot keep."""
    bind = op.get_bind()
    for table in tables:
        if bind.exec_driver_sql(f"SELECT 1 FROM {table} LIMIT 1").first() is not None:
            raise DowngradeRefused(
                f"{table} holds rows that the older schema has no place for; "
                "archive or delete them first"
            )


def rename_to_transitional(source: sa.Table, new_name: str) -> None:
    """Rename legacy table ``source`` to ``new_name``, constraints and indexes included."""
    _rename(source, source.name, new_name)


def restore_from_transitional(source: sa.Table, current_name: str) -> None:
    """Undo :func:`rename_to_transitional` (``source`` is the legacy definition)."""
    _rename(source, current_name, source.name)


def _rename(source: sa.Table, old: str, new: str) -> None:
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
    # SQLite keeps constraint names inside the table's SQL: rebuild under the new name.
    target = transitional_copy(source, new, new_metadata())
    target.create(bind)
    cols = ", ".join(f'"{c.name}"' for c in source.columns)
    bind.exec_driver_sql(f'INSERT INTO "{new}" ({cols}) SELECT {cols} FROM "{old}"')
    op.drop_table(old)


def create_tables(*names: str) -> None:
    """Create tables as the models declare them (pre-release; frozen to DDL at 1.0)."""
    from execstore.schema.models import Base

    bind = op.get_bind()
    for name in names:
        table = Base.metadata.tables[name]
        if bind.dialect.name == "sqlite" and name == "execution_log_partitioned":
            _sqlite_log_table(table).create(bind)
        else:
            table.create(bind)


def drop_tables(*names: str) -> None:
    """Drop tables (dependents first: pass them in reverse creation order)."""
    for name in names:
        op.drop_table(name)


def _sqlite_log_table(model: sa.Table) -> sa.Table:
    # SQLite fills an id only for INTEGER PRIMARY KEY; AUTOINCREMENT keeps ids increasing
    # after deletes, which archival cursors rely on.
    md = new_metadata()
    cols = [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True)
        if c.name == "id"
        else sa.Column(c.name, c.type, nullable=c.nullable, server_default=c.server_default)
        for c in model.columns
    ]
    table = sa.Table(model.name, md, *cols, sqlite_autoincrement=True)
    for index in model.indexes:
        sa.Index(index.name, *[table.c[c.name] for c in index.columns])
    return table
