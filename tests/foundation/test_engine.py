"""Each backend's connection settings and the log table's partitions."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from execstore.schema.partitions import month_start, partition_name


@pytest.mark.sqlite
async def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path) -> None:
    from execstore.config import load_settings
    from execstore.db import create_engine

    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'sub' / 'x.db'}", sqlite_busy_timeout_ms=1234
    )
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar() == "wal"
            assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
            assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar() == 1234
    finally:
        await engine.dispose()
    assert (tmp_path / "sub" / "x.db").exists()


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_log_table_is_partitioned_by_month_without_a_default(db_url: str) -> None:
    from execstore.config import load_settings
    from execstore.db import create_engine

    engine = create_engine(load_settings(database_url=db_url))
    try:
        async with engine.connect() as conn:
            strategy = await conn.scalar(
                sa.text(
                    "SELECT partstrat::text FROM pg_partitioned_table "
                    "WHERE partrelid = 'execution_log_partitioned'::regclass"
                )
            )
            parts = (
                await conn.execute(
                    sa.text(
                        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
                        "JOIN pg_class c ON c.oid = i.inhrelid "
                        "WHERE i.inhparent = 'execution_log_partitioned'::regclass"
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    assert strategy == "r"
    names = {name for name, _ in parts}
    this_month = month_start(dt.datetime.now(dt.UTC))
    assert partition_name(this_month) in names
    assert len(names) == 4  # this month and the next three
    assert all("DEFAULT" not in bound for _, bound in parts)


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_pooled_connection_is_pinged_only_after_idling_or_closing(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Busy connections skip the ping; an idle one is pinged; a dead one is replaced."""
    import asyncio

    from execstore import db
    from execstore.config import load_settings

    engine = db.create_engine(load_settings(database_url=db_url))
    pings = 0
    real_ping = engine.dialect.do_ping

    def counting_ping(dbapi_connection: object) -> bool:
        nonlocal pings
        pings += 1
        return real_ping(dbapi_connection)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.dialect, "do_ping", counting_ping)

    async def backend_pid() -> int:
        async with engine.connect() as conn:
            return int(await conn.scalar(sa.text("SELECT pg_backend_pid()")))

    try:
        first = await backend_pid()
        assert await backend_pid() == first
        assert pings == 0  # just used: handed out as it is
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        idle = db.create_engine(load_settings(database_url=db_url))
        try:
            async with idle.connect() as conn:
                await conn.scalar(sa.text("SELECT 1"))
            monkeypatch.setattr(idle.dialect, "do_ping", counting_ping)
            async with idle.connect() as conn:
                await conn.scalar(sa.text("SELECT 1"))
                assert pings == 1  # idle longer than the window: pinged first
                # The server closes the first engine's pooled connection (and the call
                # waits, up to 5 s, until that backend is gone).
                await conn.scalar(
                    sa.text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": first}
                )
        finally:
            await idle.dispose()
        await asyncio.sleep(0.2)
        assert await backend_pid() != first
    finally:
        await engine.dispose()
