"""The naming convention every constraint and index follows, for both schema states."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["NAMING_CONVENTION", "new_metadata"]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> sa.MetaData:
    """A MetaData carrying execstore's naming convention."""
    return sa.MetaData(naming_convention=NAMING_CONVENTION)


def transitional_copy(source: sa.Table, name: str, metadata: sa.MetaData) -> sa.Table:
    """``source`` re-declared as ``name`` in ``metadata``, without its foreign keys.

    Legacy tables that the plan replaces are renamed to ``*_legacy`` (or kept, for
    ``execution_log``) until a backfill drains them; their constraint and index names
    follow the new table name, and their foreign keys to ``jobs`` are gone because the
    job ids they hold are still text while ``jobs.id`` is a native uuid.
    """
    columns = [
        sa.Column(
            c.name,
            c.type,
            primary_key=c.primary_key,
            nullable=c.nullable,
            server_default=c.server_default,
            unique=bool(c.unique),
        )
        for c in source.columns
    ]
    table = sa.Table(name, metadata, *columns)
    for index in source.indexes:
        sa.Index(None, *[table.c[c.name] for c in index.columns])
    return table
