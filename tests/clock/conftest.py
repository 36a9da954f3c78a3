"""Stores on a ManualClock, on databases of their own.

Every time-dependent decision is tested with a clock pinned years away from the wall
clock, ahead (2040s) and behind (2000s-2010s): a decision that read the wall clock
instead would go the other way in one of the two. Operator jobs act on every
organization, so these tests get a database per backend for this package alone (the
shared one would have other tests' rows archived under them); each test works in its
own organization and its own years.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from execstore.clock import ManualClock
from support.postgres import PgServer, create_database, drop_database

AHEAD = "ahead"
BEHIND = "behind"
DIRECTIONS = [AHEAD, BEHIND]


def pinned(direction: str, ahead: dt.datetime, behind: dt.datetime) -> dt.datetime:
    """``ahead`` or ``behind``: both decades away from the wall clock."""
    wall = dt.datetime.now(dt.UTC)
    when = ahead if direction == AHEAD else behind
    assert abs(when - wall) > dt.timedelta(days=3 * 365), "pick a time far from the wall clock"
    return when


@pytest.fixture(scope="session")
async def _clock_pg(pg_server: PgServer) -> AsyncIterator[str]:
    from execstore.migrations.runner import migrate

    name = await create_database(pg_server, prefix="execstore_clock")
    url = pg_server.url(name)
    await migrate(url)
    yield url
    await drop_database(pg_server, name)


@pytest.fixture(scope="session")
async def _clock_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    from execstore.migrations.runner import migrate

    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('clock') / 'execstore.db'}"
    await migrate(url)
    return url


@pytest.fixture
def clock_db_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A migrated database of ``backend`` that only the clock tests use."""
    return str(request.getfixturevalue("_clock_pg" if backend == "postgres" else "_clock_sqlite"))


@pytest.fixture
def open_store(clock_db_url: str, tmp_path: Path) -> Any:
    """``open_store(clock)``: an ExecStore on the clock tests' database, running on ``clock``."""
    from execstore.config import load_settings
    from execstore.store import ExecStore

    settings = load_settings(database_url=clock_db_url, blob_url=f"file:{tmp_path / 'blobs'}")

    @asynccontextmanager
    async def opened(clock: ManualClock) -> AsyncIterator[Any]:
        async with ExecStore.open(settings, clock=clock) as store:
            yield store

    return opened
