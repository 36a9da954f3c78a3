"""A real Citus cluster for the tests: a coordinator and workers on loopback ports.

Every node is a throwaway cluster from ``support.postgres`` (initdb as ``postgres`` when
root) with ``shared_preload_libraries = 'citus'``, on a free port, removed on exit even
when a test fails. Citus must be installed in that PostgreSQL (``sh
scripts/ensure-citus.sh``, which ``make test-citus`` runs).

Citus keeps its node list per database, and every node needs the extension in every
database a distributed table lives in, so databases are made through
:meth:`CitusCluster.create_database`: it creates the database on every node, the extension
in each, and registers the coordinator and the workers. :meth:`CitusCluster.add_worker`
starts one more node and registers it in every database made so far (a rebalance test
then moves shards onto it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import asyncpg

from support.postgres import PgServer, pg_bindir, throwaway_cluster

__all__ = ["NODE_SETTINGS", "CitusCluster", "citus_cluster", "citus_installed"]

# fsync is already off in throwaway clusters. Inter-node connections go over loopback
# without TLS (the throwaway clusters have none). wal_level logical lets Citus move shards
# with logical replication, which the rebalancer uses while writes go on. Every database
# with the extension runs a Citus maintenance daemon (a background worker): PostgreSQL's
# default of 8 runs out after a few test databases.
NODE_SETTINGS = {
    "shared_preload_libraries": "'citus'",
    "citus.node_conninfo": "'sslmode=disable'",
    "wal_level": "logical",
    "max_connections": "200",
    "max_worker_processes": "64",
}


def citus_installed(bindir: Path | None = None) -> Path | None:
    """The installed ``citus.so`` of the PostgreSQL at ``bindir``, or None."""
    pg_config = (bindir or pg_bindir()) / "pg_config"
    if not pg_config.exists():
        return None
    pkglibdir = subprocess.run(
        [str(pg_config), "--pkglibdir"], check=True, capture_output=True, text=True
    ).stdout.strip()
    sharedir = subprocess.run(
        [str(pg_config), "--sharedir"], check=True, capture_output=True, text=True
    ).stdout.strip()
    lib = Path(pkglibdir, "citus.so")
    if lib.exists() and Path(sharedir, "extension", "citus.control").exists():
        return lib
    return None


class CitusCluster:
    """A running coordinator and workers; databases made here span all of them."""

    def __init__(
        self,
        coordinator: PgServer,
        workers: list[PgServer],
        start_node: Callable[[], PgServer],
    ) -> None:
        self.coordinator = coordinator
        self.workers = list(workers)
        self._start_node = start_node
        self._databases: list[str] = []

    @property
    def nodes(self) -> list[PgServer]:
        """The coordinator, then the workers."""
        return [self.coordinator, *self.workers]

    async def create_database(self, prefix: str = "execstore_citus") -> str:
        """A new database on every node, Citus in each, the nodes registered; its name."""
        name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self._databases.append(name)
        for node in self.nodes:
            await _create_with_extension(node, name)
        conn = await asyncpg.connect(self.coordinator.dsn(name))
        try:
            await conn.execute(
                "SELECT citus_set_coordinator_host($1, $2)",
                self.coordinator.host,
                self.coordinator.port,
            )
            for worker in self.workers:
                await conn.execute("SELECT citus_add_node($1, $2)", worker.host, worker.port)
        finally:
            await conn.close()
        return name

    async def drop_database(self, name: str) -> None:
        """Drop a database made by :meth:`create_database` on every node."""
        for node in self.nodes:
            conn = await asyncpg.connect(node.dsn())
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()
        if name in self._databases:
            self._databases.remove(name)

    async def add_worker(self) -> PgServer:
        """Start one more worker and register it in every database made so far."""
        worker = await asyncio.to_thread(self._start_node)
        self.workers.append(worker)
        for name in self._databases:
            await _create_with_extension(worker, name)
            conn = await asyncpg.connect(self.coordinator.dsn(name))
            try:
                await conn.execute("SELECT citus_add_node($1, $2)", worker.host, worker.port)
            finally:
                await conn.close()
        return worker


async def _create_with_extension(node: PgServer, name: str) -> None:
    conn = await asyncpg.connect(node.dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(node.dsn(name))
    try:
        await conn.execute("CREATE EXTENSION citus")
    finally:
        await conn.close()


@contextlib.contextmanager
def citus_cluster(workers: int = 2) -> Iterator[CitusCluster]:
    """A coordinator and ``workers`` workers, started side by side, all removed on exit."""
    if citus_installed() is None:
        raise RuntimeError(
            f"Citus is not installed in the PostgreSQL at {pg_bindir()}: run "
            "`sh scripts/ensure-citus.sh` (`make test-citus` does), or install the PGDG "
            "postgresql-15-citus package"
        )
    with contextlib.ExitStack() as stack:

        def start_node() -> PgServer:
            manager: AbstractContextManager[PgServer] = throwaway_cluster(NODE_SETTINGS)
            server = manager.__enter__()
            # Registered only once started: a node that failed to start cleaned up itself.
            stack.push(manager)
            return server

        # initdb dominates start-up; the nodes are independent, so start them together.
        with concurrent.futures.ThreadPoolExecutor(workers + 1) as pool:
            futures = [pool.submit(start_node) for _ in range(workers + 1)]
            started = [f.result() for f in futures]
        yield CitusCluster(started[0], started[1:], start_node)
