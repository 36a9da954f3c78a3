"""Migration fixtures: a database at every revision of each backend, built once per run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.migration_db import Templates
from support.postgres import PgServer


@pytest.fixture(scope="session")
async def _templates_pg(
    pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Templates]:
    templates = Templates("postgres", Path(tmp_path_factory.mktemp("mig_pg")), server=pg_server)
    try:
        await templates.build()
        yield templates
    finally:
        await templates.close()


@pytest.fixture(scope="session")
async def _templates_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    templates = Templates("sqlite", Path(tmp_path_factory.mktemp("mig_sqlite")))
    await templates.build()
    return templates


@pytest.fixture
def templates(backend: str, request: pytest.FixtureRequest) -> Templates:
    """Databases at every revision of ``backend``, with their schema snapshots."""
    fixture = "_templates_pg" if backend == "postgres" else "_templates_sqlite"
    result: Templates = request.getfixturevalue(fixture)
    return result
