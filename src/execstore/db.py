"""Engines and sessions, with each backend's right settings.

PostgreSQL (asyncpg): a bounded pool, UTC sessions and an application name, so operators
can see execstore in ``pg_stat_activity``. A connection is pinged on checkout when it sat
in the pool for over a second or its socket is known closed (SQLAlchemy's ``pool_pre_ping``
pings every checkout, three round trips with asyncpg: BEGIN, the ping, ROLLBACK, which
cost a busy caller more than its own statements).

SQLite (aiosqlite): WAL journal, ``foreign_keys=ON``, a busy timeout, and
``synchronous=NORMAL`` (safe under WAL). Its parent directory is created on first use.
The driver's own transaction handling is switched off and SQLAlchemy emits ``BEGIN``
itself (the recipe in SQLAlchemy's SQLite documentation), so savepoints work and DDL is
transactional: a batch job can set one bad row aside inside a savepoint, and a failed
migration step leaves nothing half-done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from execstore.config import Settings
from execstore.ids import SQLITE_FUNCTION, legacy_uuid_text

__all__ = ["PING_AFTER_IDLE_SECONDS", "create_engine", "create_session_factory", "sqlite_path"]

PING_AFTER_IDLE_SECONDS: Final = 1.0
"""A pooled connection idle longer than this is pinged before it is handed out."""
_LAST_USED: Final = "execstore_last_used"


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL points at (None for in-memory or non-SQLite URLs)."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def create_engine(
    settings: Settings, *, url: str | None = None, foreign_keys: bool = True
) -> AsyncEngine:
    """An AsyncEngine for ``url`` (default: ``settings.database_url``) tuned for its backend.

    ``foreign_keys=False`` is for SQLite migrations only: batch table rebuilds copy rows
    between tables and must not trip foreign keys half-way; integrity is checked after.
    """
    target = url or settings.database_url
    if target.startswith("sqlite"):
        path = sqlite_path(target)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            target,
            echo=settings.echo_sql,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
        )
        _configure_sqlite(engine, settings, foreign_keys=foreign_keys)
        return engine
    engine = create_async_engine(
        target,
        echo=settings.echo_sql,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        connect_args={
            "server_settings": {"application_name": "execstore", "timezone": "UTC"},
        },
    )
    _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_seconds: float) -> None:
    """Pre-ping, but only a connection that sat in the pool (or whose socket closed).

    A connection returned less than ``idle_seconds`` ago worked then, and a server that
    closed it since (restart, ``idle_session_timeout``) shows as a closed socket: those
    are pinged, and one that fails is replaced as ``pool_pre_ping`` would (the pool's
    older connections invalidated with it). The same trade as HikariCP's
    ``aliveBypassWindowMs``.
    """
    dialect = engine.dialect

    @sa.event.listens_for(engine.sync_engine, "connect")
    def _on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @sa.event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_USED] = time.monotonic()

    @sa.event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        used = record.info.get(_LAST_USED)
        driver = getattr(dbapi_connection, "driver_connection", None)
        closed = driver is None or driver.is_closed()
        if not closed and used is not None and time.monotonic() - used < idle_seconds:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            raise sa.exc.InvalidatePoolError("connection closed (ping on checkout failed)")


def _configure_sqlite(engine: AsyncEngine, settings: Settings, *, foreign_keys: bool) -> None:
    @sa.event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
        cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
        cursor.close()
        # The legacy-id mapping as SQL (execstore.ids.legacy_uuid_sql) on SQLite.
        dbapi_connection.create_function(SQLITE_FUNCTION, 1, legacy_uuid_text, deterministic=True)
        dbapi_connection.isolation_level = None

    @sa.event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # An AUTOCOMMIT connection (VACUUM, for one) must not be wrapped in a transaction.
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            connection.exec_driver_sql("BEGIN")


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (no lazy I/O after the fact)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
