"""What verification reads about one organization, from one snapshot, in two statements.

Before its records, verifying an organization needs its chain head, checkpoint index,
details dictionaries and catalog (:data:`SETUP`, one statement: one row per item, tagged
by what it is) and its archived segments (:data:`execstore.audit.reader.SEGMENTS`); then
its hot rows, a page at a time (:func:`execstore.audit.reader.fetch_hot`). All of it is
read from one snapshot: a REPEATABLE READ, READ ONLY transaction on PostgreSQL; on
SQLite a transaction is one.

The statements are defined once, with SQLAlchemy Core. On SQLite they run through the
session. On PostgreSQL they are compiled once per process and run on the asyncpg
connection underneath the session: through the session a statement cost about 0.3 ms of
Python, through asyncpg about 0.04 ms, and the eight statements an organization needed
were most of what verifying an organization of a few thousand records cost beyond its
records.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from execstore.audit.catalog import checked_dictionary
from execstore.audit.codec import DetailsCodec
from execstore.audit.reader import (
    SEGMENTS,
    HotRow,
    Segment,
    fetch_hot,
    fetch_hot_with,
    segment_of,
)
from execstore.errors import DatabaseError
from execstore.schema.audit import (
    PhiAuditCatalogEntry,
    PhiAuditChainHead,
    PhiAuditCheckpoint,
    PhiAuditDictionary,
)
from execstore.schema.base import TZ

__all__ = ["SETUP", "OrganizationSetup", "SnapshotReader"]

_HEADS: sa.Table = PhiAuditChainHead.__table__  # type: ignore[assignment]
_CHECKPOINTS: sa.Table = PhiAuditCheckpoint.__table__  # type: ignore[assignment]
_DICTIONARIES: sa.Table = PhiAuditDictionary.__table__  # type: ignore[assignment]
_CATALOG: sa.Table = PhiAuditCatalogEntry.__table__  # type: ignore[assignment]


class _Part(enum.IntEnum):
    """What a row of :data:`SETUP` is."""

    HEAD = 1
    CHECKPOINT = 2
    DICTIONARY = 3
    CATALOG = 4


_SLOTS: Final[tuple[tuple[str, sa.types.TypeEngine[Any]], ...]] = (
    ("n1", sa.BigInteger()),
    ("n2", sa.BigInteger()),
    ("n3", sa.BigInteger()),
    ("data", sa.LargeBinary()),
    ("digest", sa.LargeBinary()),
    ("text", sa.Text()),
    ("at", TZ),
)


def _part(part: _Part, table: sa.Table, **slots: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """The rows of one kind in :data:`SETUP`: ``slots`` filled, the other slots NULL."""
    columns: list[sa.ColumnElement[Any]] = [
        sa.literal_column(str(int(part)), sa.SmallInteger()).label("part")
    ]
    for name, type_ in _SLOTS:
        # Typed NULLs: PostgreSQL resolves a UNION's column types pair by pair.
        columns.append(slots.pop(name, sa.cast(sa.null(), type_)).label(name))
    if slots:
        raise TypeError(f"no slot named {sorted(slots)}")
    return sa.select(*columns).where(table.c.organization_id == sa.bindparam("org"))


SETUP: Final = sa.union_all(
    _part(_Part.HEAD, _HEADS, n1=_HEADS.c.seq, n2=_HEADS.c.archived_seq, digest=_HEADS.c.hash),
    _part(
        _Part.CHECKPOINT,
        _CHECKPOINTS,
        n1=_CHECKPOINTS.c.seq,
        digest=_CHECKPOINTS.c.hash,
        text=_CHECKPOINTS.c.blob_key,
        at=_CHECKPOINTS.c.created_at,
    ),
    _part(
        _Part.DICTIONARY,
        _DICTIONARIES,
        n1=_DICTIONARIES.c.version,
        n2=_DICTIONARIES.c.codec,
        n3=_DICTIONARIES.c.sample_count,
        data=_DICTIONARIES.c.content,
        digest=_DICTIONARIES.c.sha256,
    ),
    _part(_Part.CATALOG, _CATALOG, n1=_CATALOG.c.id, text=_CATALOG.c.value),
).order_by(sa.literal_column("part"), sa.literal_column("n1"))
"""Organization ``:org``'s chain head, checkpoint index (in seq order), dictionaries and
catalog: everything verification reads before the records but the archived segments."""


@dataclass(slots=True)
class OrganizationSetup:
    """What :data:`SETUP` read about one organization."""

    head: tuple[int, bytes, int] | None = None
    """(seq, hash, archived_seq) of the chain head row; None if there is none."""
    checkpoints: list[tuple[int, bytes, str, dt.datetime]] = field(default_factory=list)
    """(seq, hash, blob key, created_at) of each indexed checkpoint, in seq order."""
    codec: DetailsCodec = field(default_factory=DetailsCodec)
    catalog: dict[int, str] = field(default_factory=dict)


def _setup_of(org: uuid.UUID, rows: Sequence[Any]) -> OrganizationSetup:
    setup = OrganizationSetup()
    for row in rows:
        part = row["part"]
        if part == _Part.CATALOG:
            setup.catalog[int(row["n1"])] = row["text"]
        elif part == _Part.CHECKPOINT:
            at = row["at"]
            setup.checkpoints.append(
                (
                    int(row["n1"]),
                    bytes(row["digest"]),
                    row["text"],
                    at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at,
                )
            )
        elif part == _Part.DICTIONARY:
            setup.codec.add(
                checked_dictionary(org, row["n1"], row["n2"], row["data"], row["n3"], row["digest"])
            )
        elif part == _Part.HEAD:
            setup.head = (int(row["n1"]), bytes(row["digest"]), int(row["n2"]))
    return setup


_Statement = sa.Select[Any] | sa.CompoundSelect[Any]
_COMPILED: dict[tuple[_Statement, str], tuple[str, tuple[str, ...]]] = {}


def _asyncpg_sql(statement: _Statement, dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """``statement`` as asyncpg SQL and the names of its parameters in order (cached)."""
    key = (statement, dialect.name)
    found = _COMPILED.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect)
        found = _COMPILED[key] = (compiled.string, tuple(compiled.positiontup or ()))
    return found


class SnapshotReader:
    """Reads organizations one snapshot at a time, on one connection held for the run."""

    def __init__(self, session: AsyncSession, driver: Any | None) -> None:
        self.session = session
        self._driver = driver
        self._dialect = session.get_bind().dialect

    @classmethod
    async def open(cls, session: AsyncSession) -> SnapshotReader:
        """A reader on ``session``'s connection (call with no transaction in progress)."""
        if session.get_bind().dialect.name != "postgresql":
            return cls(session, None)
        # The session's transaction never sends a statement (asyncpg's BEGIN comes with
        # the first one), so the connection is free for the snapshots' own transactions.
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        return cls(session, raw.driver_connection)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """One snapshot: every read inside sees the database as of its first statement."""
        if self._driver is None:
            try:
                yield  # SQLite: the session's transaction begins with the first statement
            finally:
                await self.session.rollback()
            return
        transaction = self._driver.transaction(isolation="repeatable_read", readonly=True)
        try:
            await transaction.start()
        except asyncpg.PostgresError as exc:
            raise _translated(exc) from exc
        try:
            yield
        finally:
            try:
                await transaction.rollback()  # read only: nothing to commit
            except asyncpg.PostgresError as exc:
                raise _translated(exc) from exc

    async def setup(self, org: uuid.UUID) -> OrganizationSetup:
        """``org``'s chain head, checkpoint index, dictionaries and catalog."""
        return _setup_of(org, await self._rows(SETUP, org=org))

    async def segments(self, org: uuid.UUID, *, after: int) -> list[Segment]:
        """``org``'s archived segments holding records after ``after``, in seq order."""
        return [segment_of(row) for row in await self._rows(SEGMENTS, org=org, after=after)]

    async def hot(self, org: uuid.UUID, *, after: int, limit: int) -> list[HotRow]:
        """Up to ``limit`` hot rows of ``org`` after ``after``, in seq order, with the
        time, ids and address as text (see :func:`execstore.audit.reader.fetch_hot`)."""
        if self._driver is None:
            return await fetch_hot(self.session, org, after=after, limit=limit, as_text=True)
        return await fetch_hot_with(self._driver, org, after=after, limit=limit, as_text=True)

    async def _rows(self, statement: _Statement, **params: Any) -> Sequence[Any]:
        """The rows of ``statement``, each readable by column name."""
        if self._driver is None:
            return (await self.session.execute(statement, params)).mappings().all()
        sql, names = _asyncpg_sql(statement, self._dialect)
        try:
            rows: Sequence[Any] = await self._driver.fetch(sql, *(params[n] for n in names))
        except asyncpg.PostgresError as exc:
            raise _translated(exc) from exc
        return rows


def _translated(exc: asyncpg.PostgresError) -> DatabaseError:
    # The driver bypasses SQLAlchemy: translate here, as translate_database_errors would.
    return DatabaseError(str(exc).strip().splitlines()[0])
