"""Shared fixtures: real PostgreSQL and SQLite databases, migrated once per run.

- ``pg_server``: a PostgreSQL server (see ``support.postgres``).
- ``backend``: parametrizes a test over ``postgres`` and ``sqlite`` (the contract suite).
- ``db_url``: a database of that backend migrated to head, shared by the run; tests keep
  out of each other's way by working inside their own organization.
- ``fresh_db_url``: a new, empty database of that backend for one test (migrations).
- ``settings`` / ``store``: an opened ExecStore on ``db_url`` with a local blob store;
  ``org``: a new organization in it; ``job``: one committed job of ``org``.
- ``azure_store``: an opened ExecStore on ``db_url`` with its blobs on Azurite.
- ``store_at``: ``store_at(clock, **settings)`` opens an ExecStore running on a
  ``ManualClock``, on a database of that backend shared by the boundary and tenancy tests
  only (operator jobs act on every organization, so the shared ``db_url`` would have other
  tests' rows archived under them), with one blob directory for the run so every pointer
  row's blob is found. Each test works in its own organizations and its own years.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from support.postgres import PgServer, create_database, drop_database, find_server

pytest_plugins = ["support.azurite"]

BACKENDS = [
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
    pytest.param("sqlite", marks=pytest.mark.sqlite, id="sqlite"),
]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    with find_server() as server:
        yield server


@pytest.fixture(scope="session")
async def _migrated_pg(pg_server: PgServer) -> AsyncIterator[str]:
    from execstore.migrations.runner import migrate

    name = await create_database(pg_server)
    url = pg_server.url(name)
    await migrate(url)
    yield url
    await drop_database(pg_server, name)


@pytest.fixture(scope="session")
async def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    from execstore.migrations.runner import migrate

    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'execstore.db'}"
    await migrate(url)
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest) -> str:
    fixture = "_migrated_pg" if backend == "postgres" else "_migrated_sqlite"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
async def fresh_db_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    name = await create_database(server, prefix="execstore_fresh")
    yield server.url(name)
    await drop_database(server, name)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Any:
    from execstore.config import load_settings

    return load_settings(database_url=db_url, blob_url=f"file:{tmp_path / 'blobs'}")


@pytest.fixture
async def store(settings: Any) -> AsyncIterator[Any]:
    from execstore.store import ExecStore

    async with ExecStore.open(settings) as opened:
        yield opened


@pytest.fixture
def org_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
async def org(store: Any, org_id: uuid.UUID) -> uuid.UUID:
    """A new organization with one workflow, committed; its id."""
    from execstore.schema.models import Organization

    async with store.sessions() as session, session.begin():
        session.add(Organization(id=org_id, name=f"org {org_id.hex[:6]}"))
    return org_id


@pytest.fixture
async def job(store: Any, org: uuid.UUID) -> uuid.UUID:
    """One committed job of ``org``."""
    from support.timeline import new_jobs

    return (await new_jobs(store, org))[0]


@pytest.fixture
async def azure_store(
    db_url: str, azurite: Any, request: pytest.FixtureRequest
) -> AsyncIterator[Any]:
    """An opened ExecStore on ``db_url`` whose blobs go to a new Azurite container (named
    after the test's directory: ``logs-...``, ``audit-...``)."""
    from execstore.config import load_settings
    from execstore.store import ExecStore

    settings = load_settings(
        database_url=db_url,
        blob_url=f"azure://{azurite.new_container_name(request.path.parent.name)}",
        azure_connection_string=azurite.connection_string,
    )
    async with ExecStore.open(settings) as opened:
        yield opened


@pytest.fixture(scope="session")
async def _boundary_pg(pg_server: PgServer) -> AsyncIterator[str]:
    from execstore.migrations.runner import migrate

    name = await create_database(pg_server, prefix="execstore_bound")
    url = pg_server.url(name)
    await migrate(url)
    yield url
    await drop_database(pg_server, name)


@pytest.fixture(scope="session")
async def _boundary_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    from execstore.migrations.runner import migrate

    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('bound') / 'execstore.db'}"
    await migrate(url)
    return url


@pytest.fixture(scope="session")
def _boundary_blobs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bound-blobs")


@pytest.fixture
def store_at(
    backend: str, request: pytest.FixtureRequest, _boundary_blobs: Path
) -> Callable[..., AbstractAsyncContextManager[Any]]:
    """``store_at(clock, **settings)``: an ExecStore on ``clock`` (see the module docstring)."""
    from execstore.config import load_settings
    from execstore.store import ExecStore

    url = str(request.getfixturevalue(f"_boundary_{'pg' if backend == 'postgres' else 'sqlite'}"))
    blob_dir = _boundary_blobs / backend

    @asynccontextmanager
    async def opened(clock: Any, **overrides: Any) -> AsyncIterator[Any]:
        settings = load_settings(database_url=url, blob_url=f"file:{blob_dir}", **overrides)
        async with ExecStore.open(settings, clock=clock) as store:
            yield store

    return opened
