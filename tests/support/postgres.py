"""A real PostgreSQL for the tests, wherever they run.

Order of preference:
1. ``EXECSTORE_TEST_DATABASE_URL`` (a server URL; the tests create their own databases);
2. a server answering on 127.0.0.1:5432 as ``postgres``;
3. a throwaway cluster started from the installed binaries in a temporary directory
   (``initdb``/``pg_ctl`` refuse root, so as root they run as the ``postgres`` user).

``EXECSTORE_TEST_PG=cluster`` forces the third, to prove it works on this machine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import asyncpg

__all__ = [
    "PgServer",
    "create_database",
    "drop_database",
    "find_server",
    "pg_bindir",
    "throwaway_cluster",
]


@dataclass(frozen=True)
class PgServer:
    """Where a PostgreSQL server answers; ``url(db)`` is an execstore URL for a database."""

    host: str
    port: int
    user: str = "postgres"

    def dsn(self, database: str = "postgres") -> str:
        """An asyncpg DSN."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def url(self, database: str) -> str:
        """A SQLAlchemy async URL."""
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"


def _answers(host: str, port: int) -> bool:
    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(
                host=host, port=port, user="postgres", database="postgres", timeout=3
            )
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    # Called from sync fixtures that may run inside the test loop: probe on a thread.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, probe()).result()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bindir() -> Path:
    """The bin directory of the newest installed PostgreSQL server."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if Path(c, "initdb").exists():
            return Path(c)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("no PostgreSQL server binaries found (initdb); install postgresql")


@contextlib.contextmanager
def throwaway_cluster(settings: Mapping[str, str] | None = None) -> Iterator[PgServer]:
    """A new PostgreSQL cluster on a free port, removed on exit.

    ``settings`` are appended to its ``postgresql.conf`` before it starts (values as
    PostgreSQL reads them there, e.g. ``{"shared_preload_libraries": "'citus'"}``).
    """
    bindir = pg_bindir()
    root = Path(tempfile.mkdtemp(prefix="execstore-pg-"))
    data = root / "data"
    port = _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    run = lambda *args: subprocess.run(  # noqa: E731
        [*as_user, *args], check=True, capture_output=True, text=True, timeout=120
    )
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        if settings:
            # Appending keeps the file's owner (postgres) when we run as root.
            with (data / "postgresql.conf").open("a") as conf:
                conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        try:
            run(
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(root / "log"),
                "-w",
                "start",
            )
        except subprocess.CalledProcessError as exc:
            log = (root / "log").read_text(errors="replace") if (root / "log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start on port {port}:\n{log[-2000:]}") from exc
        yield PgServer("127.0.0.1", port)
    finally:
        with contextlib.suppress(Exception):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def find_server() -> Iterator[PgServer]:
    """The server the tests should use (see the module docstring)."""
    explicit = os.environ.get("EXECSTORE_TEST_DATABASE_URL")
    forced = os.environ.get("EXECSTORE_TEST_PG") == "cluster"
    if explicit and not forced:
        from sqlalchemy.engine import make_url

        u = make_url(explicit)
        yield PgServer(u.host or "127.0.0.1", u.port or 5432, u.username or "postgres")
        return
    if not forced and _answers("127.0.0.1", 5432):
        yield PgServer("127.0.0.1", 5432)
        return
    with throwaway_cluster() as server:
        yield server


async def create_database(server: PgServer, prefix: str = "execstore_test") -> str:
    """A new, empty database with a unique name; returns the name."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_database(server: PgServer, name: str) -> None:
    """Drop a database this run created (closing any connection left on it)."""
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
