"""Running the lifecycle machine: the template database, settings profiles, counters.

Shared by the bounded run in the suite (``test_lifecycle.py``) and the long one
(``scripts/soak.py``, ``make soak``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from support.postgres import PgServer

__all__ = ["template_database"]


def _in_a_thread(coro: object) -> object:
    # Called from sync fixtures that may run while pytest-asyncio owns this thread's loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]


async def _create(server: PgServer) -> str:
    from execstore.migrations.runner import migrate

    name = f"execstore_life_tmpl_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    await migrate(server.url(name))
    return name


async def _drop(server: PgServer, name: str) -> None:
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def template_database(server: PgServer) -> Iterator[str]:
    """A migrated database, dropped afterwards; nothing may stay connected to it."""
    name = str(_in_a_thread(_create(server)))
    try:
        yield name
    finally:
        _in_a_thread(_drop(server, name))
