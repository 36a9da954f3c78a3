"""Databases at every revision, cloned per test, and what the migration tests do with them.

:class:`Templates` migrates one database a revision at a time and keeps a copy at each
(PostgreSQL: ``CREATE DATABASE ... TEMPLATE``; SQLite: a copy of the file) with its
:func:`~support.schema_snapshot.snapshot`; a test clones the copy it needs instead of
migrating from scratch (about 0.3 s on PostgreSQL instead of a second or more).

:func:`insert_any_row` writes one row into a table, whatever its columns, with foreign
keys and triggers off: a guard must see a row in that table alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.dialects import postgresql

from execstore.config import load_settings
from execstore.db import create_engine
from execstore.migrations.runner import alembic_config, migrate

from .postgres import PgServer, drop_database
from .schema_snapshot import create_from_models, snapshot

__all__ = [
    "REVISIONS",
    "Templates",
    "count_rows",
    "engine_for",
    "insert_any_row",
    "insert_rows_everywhere",
    "models_schema",
    "revision_module",
    "schema_of",
    "state_of",
]

_SCRIPT = ScriptDirectory.from_config(alembic_config())
REVISIONS: list[str] = [r.revision for r in reversed(list(_SCRIPT.walk_revisions()))]
_PARTITION = re.compile(r"^execution_log_partitioned_(p\d{4}_\d{2}(_\d+)?|default)$")


def revision_module(revision: str) -> Any:
    """The module of a shipped revision (its declared lists)."""
    script = _SCRIPT.get_revision(revision)
    assert script is not None
    return script.module


def engine_for(url: str) -> Any:
    """An engine on ``url`` with SQLite's foreign keys off (rows written alone)."""
    return create_engine(load_settings(database_url=url), url=url, foreign_keys=False)


async def schema_of(url: str) -> dict[str, Any]:
    """:func:`snapshot` of the database at ``url``."""
    engine = engine_for(url)
    try:
        async with engine.connect() as conn:
            result: dict[str, Any] = await conn.run_sync(snapshot)
            return result
    finally:
        await engine.dispose()


async def models_schema(
    url: str, metadata: sa.MetaData | None = None, then: tuple[str, ...] = ()
) -> dict[str, Any]:
    """:func:`snapshot` of the schema the models (or ``metadata``) describe, built in the
    empty database at ``url``; ``then``: statements run on it before the snapshot."""
    engine = engine_for(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(create_from_models, metadata)
            for statement in then:
                await conn.exec_driver_sql(statement)
        async with engine.connect() as conn:
            result: dict[str, Any] = await conn.run_sync(snapshot)
            return result
    finally:
        await engine.dispose()


async def count_rows(url: str) -> dict[str, int]:
    """Rows in every table (log partitions counted with their parent), by table."""
    return (await state_of(url))["rows"]


def _rows(conn: sa.Connection) -> dict[str, int]:
    names = [
        n
        for n in sa.inspect(conn).get_table_names()
        if n != "alembic_version" and not _PARTITION.match(n)
    ]
    if not names:
        return {}
    union = " UNION ALL ".join(f"SELECT '{n}', count(*) FROM \"{n}\"" for n in sorted(names))
    return {name: int(n) for name, n in conn.exec_driver_sql(union)}


def _state(conn: sa.Connection) -> dict[str, Any]:
    revision = None
    if sa.inspect(conn).has_table("alembic_version"):
        revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    return {"revision": revision, "schema": snapshot(conn), "rows": _rows(conn)}


async def state_of(url: str) -> dict[str, Any]:
    """The database's revision, schema (:func:`snapshot`) and rows per table, at once."""
    engine = engine_for(url)
    try:
        async with engine.connect() as conn:
            result: dict[str, Any] = await conn.run_sync(_state)
            return result
    finally:
        await engine.dispose()


def _required(column: sa.Column[Any]) -> bool:
    # NOT NULL without a default of its own (a server default or an identity).
    return not column.nullable and column.server_default is None and column.identity is None


def _value(column: sa.Column[Any], pg: bool) -> Any:
    kind = column.type
    if isinstance(kind, sa.ARRAY):
        return []
    if isinstance(kind, sa.JSON):
        return []
    if isinstance(kind, sa.Uuid):
        return uuid.uuid4()
    if isinstance(kind, postgresql.INET):
        return "10.0.0.1"
    if isinstance(kind, sa.LargeBinary):
        return bytes(32)
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, sa.DateTime):
        now = dt.datetime.now(dt.UTC)
        return now if (pg and kind.timezone) else now.replace(tzinfo=None)
    if isinstance(kind, sa.Date):
        return dt.date.today()
    if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
        return Decimal(0)
    if isinstance(kind, sa.Integer):
        return 1
    if isinstance(kind, sa.String):
        # Text ids on SQLite and in the legacy tables: a uuid's text suits both.
        return "I" if kind.length == 1 else str(uuid.uuid4())[: kind.length]
    raise AssertionError(f"no sample value for {column.name} {kind!r}: add one")


async def insert_any_row(url: str, table: str, **values: Any) -> dict[str, Any]:
    """Insert one row into ``table`` (its required columns filled in, ``values`` over
    them) with foreign keys and triggers off; the values written."""
    engine = engine_for(url)
    try:
        async with engine.begin() as conn:
            pg = conn.dialect.name == "postgresql"
            if pg:
                await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))

            reflected = await conn.run_sync(
                lambda sync: sa.Table(table, sa.MetaData(), autoload_with=sync)
            )
            row = {c.name: _value(c, pg) for c in reflected.columns if _required(c)}
            row.update(values)
            await conn.execute(sa.insert(reflected).values(**row))
            return row
    finally:
        await engine.dispose()


async def insert_rows_everywhere(
    url: str, overrides: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """One row in every table, each naming the rows its foreign keys point at (one
    organization, one workflow, one job...); ``overrides`` per table. The rows, by table.

    Triggers are off on PostgreSQL, so each table holds exactly the row written here.
    """
    engine = engine_for(url)
    written: dict[str, dict[str, Any]] = {}
    try:
        async with engine.begin() as conn:
            pg = conn.dialect.name == "postgresql"
            if pg:
                await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))

            metadata = sa.MetaData()
            await conn.run_sync(
                lambda sync: metadata.reflect(
                    sync,
                    only=lambda name, _: name != "alembic_version" and not _PARTITION.match(name),
                )
            )
            for table in metadata.sorted_tables:
                row = {c.name: _value(c, pg) for c in table.columns if _required(c)}
                for fk in table.foreign_key_constraints:
                    if not any(row.get(c.name) is not None for c in fk.columns):
                        continue  # an optional reference: left empty
                    for element in fk.elements:
                        parent = written[element.column.table.name]
                        row[element.parent.name] = parent[element.column.name]
                row.update((overrides or {}).get(table.name, {}))
                await conn.execute(sa.insert(table).values(**row))
                written[table.name] = row
    finally:
        await engine.dispose()
    return written


@dataclass
class Templates:
    """A database at every revision of one backend, for the migration tests.

    PostgreSQL: one database per revision, shared by the tests (creating and dropping
    a database costs more than most of these tests): :meth:`at` hands it over and
    afterwards checks it is as the test found it (same revision, same schema) and
    deletes the rows the test wrote; a test that fails or changed it leaves it
    dropped, and the next test gets a new one. SQLite: a pristine file per revision,
    copied for every test.
    """

    backend: str
    root: Path
    server: PgServer | None = None
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    _urls: dict[str, str] = field(default_factory=dict)
    _names: list[str] = field(default_factory=list)
    _scratch: str | None = None

    def _url(self, name: str) -> str:
        if self.server is not None:
            return self.server.url(name)
        return f"sqlite+aiosqlite:///{self.root / name}.db"

    async def _create(self, name: str, template: str | None = None) -> str:
        if self.server is None:
            assert template is not None
            for suffix in ("", "-wal", "-shm"):
                path = self.root / f"{template}.db{suffix}"
                if path.exists():
                    shutil.copyfile(path, self.root / f"{name}.db{suffix}")
            return self._url(name)
        conn = await asyncpg.connect(self.server.dsn())
        try:
            like = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(f'CREATE DATABASE "{name}"{like}')
        finally:
            await conn.close()
        self._names.append(name)
        return self._url(name)

    async def _drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1].removesuffix(".db")
        if self.server is not None:
            await drop_database(self.server, name)
            self._names.remove(name)
        else:
            for suffix in ("", "-wal", "-shm"):
                (self.root / f"{name}.db{suffix}").unlink(missing_ok=True)

    async def build(self) -> None:
        """Migrate one database revision by revision, keeping a copy at each."""
        work = f"mig_{uuid.uuid4().hex[:8]}"
        if self.server is not None:
            await self._create(work)
        self.snapshots["base"] = {"tables": {}, "functions": {}, "statistics": {}, "partitions": {}}
        for revision in REVISIONS:
            await migrate(self._url(work), revision)
            if revision == REVISIONS[-1]:
                self._urls[revision] = self._url(work)
            else:
                self._urls[revision] = await self._create(f"mig_{uuid.uuid4().hex[:8]}", work)
            self.snapshots[revision] = await schema_of(self._urls[revision])

    async def _fresh(self, revision: str) -> str:
        name = f"mig_{uuid.uuid4().hex[:8]}"
        if self.server is None:
            return await self._create(name, self._urls[revision].rsplit("/", 1)[1][:-3])
        url = await self._create(name)
        await migrate(url, revision)
        return url

    @contextlib.asynccontextmanager
    async def at(self, revision: str, *, checked: bool = False) -> AsyncIterator[str]:
        """A database at ``revision`` for a test that leaves it at that revision with
        the same schema (rows it wrote are deleted afterwards). ``checked``: the test
        asserts that itself, so it is not read again afterwards."""
        if self.server is None:
            async with self.private(revision) as url:
                yield url
            return
        url = self._urls.get(revision) or await self._fresh(revision)
        self._urls.pop(revision, None)  # back only once it is as it was
        engine = engine_for(url)
        try:
            yield url
            async with engine.begin() as conn:
                if checked:
                    rows = await conn.run_sync(_rows)
                else:
                    now = await conn.run_sync(_state)
                    assert now["revision"] == revision, "the test left another revision"
                    assert now["schema"] == self.snapshots[revision], "the test changed the schema"
                    rows = now["rows"]
                await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
                for table, count in rows.items():
                    if count:
                        await conn.execute(sa.text(f'DELETE FROM "{table}"'))
        except BaseException:
            await engine.dispose()
            await self._drop(url)
            raise
        await engine.dispose()
        self._urls[revision] = url

    @contextlib.asynccontextmanager
    async def scratch(self) -> AsyncIterator[str]:
        """An empty database to build a schema in (PostgreSQL: one for the whole run,
        its ``public`` schema dropped and made again each time)."""
        if self.server is None:
            url = self._url(f"mig_{uuid.uuid4().hex[:8]}")
            try:
                yield url
            finally:
                await self._drop(url)
            return
        if self._scratch is None:
            self._scratch = await self._create(f"mig_{uuid.uuid4().hex[:8]}")
        engine = engine_for(self._scratch)
        try:
            async with engine.begin() as conn:
                await conn.exec_driver_sql("DROP SCHEMA public CASCADE")
                await conn.exec_driver_sql("CREATE SCHEMA public")
        finally:
            await engine.dispose()
        yield self._scratch

    @contextlib.asynccontextmanager
    async def private(self, revision: str) -> AsyncIterator[str]:
        """A database of the test's own at ``revision``, dropped afterwards."""
        url = await self._fresh(revision)
        try:
            yield url
        finally:
            await self._drop(url)

    async def close(self) -> None:
        """Drop every database this made."""
        if self.server is not None:
            for name in list(self._names):
                await drop_database(self.server, name)
