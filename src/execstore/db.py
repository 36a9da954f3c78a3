"""Engines and sessions, with each backend's right settings.

PostgreSQL (asyncpg): a bounded pool with pre-ping, UTC sessions and an application
name, so operators can see execstore in ``pg_stat_activity``.

SQLite (aiosqlite): WAL journal, ``foreign_keys=ON``, a busy timeout, and
``synchronous=NORMAL`` (safe under WAL). Its parent directory is created on first use.
The driver's own transaction handling is switched off and SQLAlchemy emits ``BEGIN``
itself (the recipe in SQLAlchemy's SQLite documentation), so savepoints work and DDL is
transactional: a batch job can set one bad row aside inside a savepoint, and a failed
migration step leaves nothing half-done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

__all__ = ["create_engine", "create_session_factory", "sqlite_path"]


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
    return create_async_engine(
        target,
        echo=settings.echo_sql,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout_seconds,
        pool_pre_ping=True,
        connect_args={
            "server_settings": {"application_name": "execstore", "timezone": "UTC"},
        },
    )


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
