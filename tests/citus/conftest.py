"""Fixtures for the Citus tests: one coordinator and two workers for the whole run.

Every test here carries the ``citus`` marker (added below), which the project's pytest
options deselect: plain ``pytest`` and ``make test`` never start Citus. ``make test-citus``
installs Citus once (``scripts/ensure-citus.sh``) and runs ``pytest -m citus tests/citus``.

- ``citus``: the running :class:`~support.citus.CitusCluster`;
- ``citus_db``: a new database on every node with Citus and the nodes registered, for one
  test (its name; the coordinator's URL is ``citus.coordinator.url(name)``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from support.citus import CitusCluster, citus_cluster

_HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Before `-m` deselects: every test under tests/citus is a Citus test.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.citus)


@pytest.fixture(scope="session")
def citus() -> Iterator[CitusCluster]:
    with citus_cluster() as cluster:
        yield cluster


@pytest.fixture
async def citus_db(citus: CitusCluster) -> AsyncIterator[str]:
    name = await citus.create_database()
    yield name
    await citus.drop_database(name)
