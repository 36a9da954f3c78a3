"""Databases in the phases of the online migrations, cloned from one template per backend.

``legacy_url`` is a new database holding :mod:`legacy_world`'s rows at the last expand
revision (every legacy table still there, nothing backfilled). Building it runs eleven
revisions; a clone is a file copy (SQLite) or ``CREATE DATABASE ... TEMPLATE``
(PostgreSQL), so each test starts from its own copy at a fraction of the cost.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from execstore.config import load_settings
from execstore.migrations.runner import migrate
from execstore.store import ExecStore
from support.postgres import PgServer, create_database, drop_database

from .legacy_world import LAST_EXPAND, build_legacy_world, clock


async def _build(url: str) -> None:
    await migrate(url, "legacy_baseline")
    await build_legacy_world(url)
    await migrate(url, LAST_EXPAND)


@pytest.fixture(scope="session")
async def _legacy_template_pg(pg_server: PgServer) -> AsyncIterator[str]:
    name = await create_database(pg_server, prefix="execstore_phases_tmpl")
    await _build(pg_server.url(name))
    yield name
    await drop_database(pg_server, name)


@pytest.fixture(scope="session")
async def _legacy_template_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("phases") / "template.db"
    await _build(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def _legacy_template(backend: str, request: pytest.FixtureRequest) -> Any:
    if backend == "sqlite":
        return request.getfixturevalue("_legacy_template_sqlite")
    return request.getfixturevalue("pg_server"), request.getfixturevalue("_legacy_template_pg")


@pytest.fixture
async def legacy_url(_legacy_template: Any, tmp_path: Path) -> AsyncIterator[str]:
    """A private copy of the legacy template (see the module docstring)."""
    if isinstance(_legacy_template, Path):
        copy = tmp_path / "legacy.db"
        shutil.copyfile(_legacy_template, copy)
        yield f"sqlite+aiosqlite:///{copy}"
        return
    server, template = _legacy_template
    name = f"execstore_phase_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await conn.close()
    yield server.url(name)
    await drop_database(server, name)


@pytest.fixture
async def legacy_store(legacy_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    """An ExecStore on ``legacy_url`` whose clock stands at ``legacy_world.NOW``."""
    settings = load_settings(
        database_url=legacy_url,
        blob_url=f"file:{tmp_path / 'blobs'}",
        rag_mode="dual_write_read_legacy",
        rag_shadow_sample_rate=0.0,
    )
    async with ExecStore.open(settings, clock=clock()) as store:
        yield store
