"""What every schema module shares: the naming convention, the declarative base, helpers.

The optimized schema is split by capability (``reference``, ``results``, ``metadata``,
``rag``, ``logs``, ``audit``) so each capability's tables sit in one module;
:mod:`execstore.schema.models` re-exports them all and is what migrations compare against.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from execstore.config import Codec
from execstore.schema.enums import CodecColumn
from execstore.schema.types import GUID, JSONDoc, UtcTimestamp

__all__ = [
    "BIGID",
    "NAMING_CONVENTION",
    "TZ",
    "ArchivePointer",
    "Base",
    "KeyedArchivePointer",
    "job_fk",
    "new_metadata",
    "owned_by",
    "transitional_copy",
]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TZ = UtcTimestamp()
BIGID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def new_metadata() -> sa.MetaData:
    """A MetaData carrying execstore's naming convention."""
    return sa.MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    """Declarative base for the optimized schema."""

    metadata = new_metadata()
    type_annotation_map = {  # noqa: RUF012 - SQLAlchemy reads it once, never mutated
        uuid.UUID: GUID(),
        dt.datetime: TZ,
        dict[str, Any]: JSONDoc(),
    }


def job_fk() -> Any:
    """A ``jobs.id`` foreign key whose rows go with the job."""
    return sa.ForeignKey("jobs.id", ondelete="CASCADE")


def owned_by(table: str, column: str, *, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    """A foreign key ``(organization_id, column) -> table(organization_id, id)``.

    This is how the database itself refuses a reference to another organization's row:
    the referenced tables carry a unique ``(organization_id, id)`` (small reference
    tables, so the extra index costs nothing on hot rows). A NULL ``column`` is not
    checked (MATCH SIMPLE), as for a plain foreign key.
    """
    return sa.ForeignKeyConstraint(
        ["organization_id", column],
        [f"{table}.organization_id", f"{table}.id"],
        ondelete=ondelete,
    )


class ArchivePointer:
    """What every archive pointer row holds about its blob: results, logs and audit alike.

    One set of columns and types for every pointer table, so one function reads any row
    as an ArchiveRef (:func:`execstore.archival.archive_ref`), one writes its values
    (:func:`execstore.archival.pointer_values`) and one reconciler kind checks any table
    (:class:`execstore.archival.PointerTable`):

    - sizes are ``integer``: an archive holds at most 2 GiB - 1 bytes, raw or stored (the
      encoder refuses more, :data:`execstore.blob.MAX_ARCHIVE_SIZE`); ``bigint`` would
      cost the results pointer 8 B a row, past its 150 B budget;
    - ``codec`` is :class:`execstore.config.Codec`, stored as its ``smallint`` code;
    - ``lost``: the reconciler found the blob missing; reads fail fast with ArchiveMissing
      until a repair run finds it again and clears the mark.

    A table whose blob key cannot be derived from the row also stores the key and the
    record count (:class:`KeyedArchivePointer`); ``job_result_archives`` derives both
    (one document under a key made of the job), which keeps its row at 96 B.

    ``archived_at`` has no ORM default: the writer passes its clock's time (see
    :mod:`execstore.clock`); the server default only serves rows other programs write.
    Columns are in the order that packs without padding.
    """

    archived_at: Mapped[dt.datetime] = mapped_column(server_default=sa.func.now())
    raw_size: Mapped[int] = mapped_column(sa.Integer())
    stored_size: Mapped[int] = mapped_column(sa.Integer())
    codec: Mapped[Codec] = mapped_column(CodecColumn())
    format_version: Mapped[int] = mapped_column(sa.SmallInteger(), default=1, server_default="1")
    lost: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    sha256: Mapped[bytes] = mapped_column(sa.LargeBinary(32))


class KeyedArchivePointer(ArchivePointer):
    """An :class:`ArchivePointer` that stores its blob key and record count (logs, audit)."""

    record_count: Mapped[int] = mapped_column(sa.Integer())
    blob_key: Mapped[str] = mapped_column(sa.String(400), unique=True)


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
