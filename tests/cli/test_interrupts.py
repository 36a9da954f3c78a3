"""SIGINT and SIGTERM end a command cleanly: the real ``execstore`` in a subprocess.

A batch command stops at the end of the batch it is in (what it finished is committed),
prints one line saying what was done and that a re-run continues, and exits 130 (SIGINT)
or 143 (SIGTERM); the re-run then completes with nothing lost or doubled. The signal is
sent at several points of the run, chosen by watching the database, not by sleeping.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from execstore.config import load_settings
from execstore.migrations.runner import migrate
from execstore.store import ExecStore
from logs.conftest import lines, read_all
from support.postgres import PgServer, create_database, drop_database
from support.timeline import new_jobs, new_org

EXECSTORE = str(Path(sys.executable).parent / "execstore")
JOBS = 60
LINES = 50  # a job's lines, 90 days old: past the 30-day hot window
CHUNK = 25  # a chunk never splits a job this small: one chunk a job, 60 chunks a run

pytestmark = pytest.mark.postgres


@pytest.fixture
async def old_logs(pg_server: PgServer, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """A database of its own holding JOBS jobs of LINES lines each, all due for archival."""
    name = await create_database(pg_server, prefix="execstore_interrupt")
    url = pg_server.url(name)
    await migrate(url)
    settings = load_settings(database_url=url, blob_url=f"file:{tmp_path / 'blobs'}")
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=90)
    async with ExecStore.open(settings) as store:
        org, workflow = await new_org(store)
        jobs = await new_jobs(store, org, JOBS, workflow=workflow)
        for n, job in enumerate(jobs):
            async with store.unit(org) as uow:
                await uow.logs.append(job, lines(LINES, start=start, seed=n, tag=f"{n}:"))
    yield {
        "url": url,
        "blob_url": settings.blob_url,
        "settings": settings,
        "org": org,
        "jobs": jobs,
    }
    await drop_database(pg_server, name)


def _start(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXECSTORE_")}
    return subprocess.Popen(
        [EXECSTORE, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


async def _archived(url: str) -> tuple[int, int, int]:
    """Archive chunks, the lines they hold, and the lines still hot."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        chunks, held = await conn.fetchrow(
            "SELECT count(*), coalesce(sum(record_count), 0) FROM execution_log_archives"
        )
        hot = await conn.fetchval("SELECT count(*) FROM execution_log_partitioned")
        return int(chunks), int(held), int(hot)
    finally:
        await conn.close()


async def _chunks(url: str) -> int:
    return (await _archived(url))[0]


async def _interrupt_after(process: subprocess.Popen[str], url: str, chunks: int, sig: int) -> None:
    deadline = time.monotonic() + 120
    while await _chunks(url) < chunks:
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "no progress"
        await asyncio.sleep(0.005)
    process.send_signal(sig)


@pytest.mark.parametrize(
    ("sig", "code", "after"),
    [
        (signal.SIGINT, 130, 1),  # the first chunk
        (signal.SIGTERM, 143, 20),  # a third of the way
        (signal.SIGINT, 130, 40),  # two thirds
    ],
    ids=["sigint-first-chunk", "sigterm-a-third", "sigint-two-thirds"],
)
async def test_archive_logs_stops_cleanly_and_a_rerun_completes(
    old_logs: dict[str, Any], sig: int, code: int, after: int
) -> None:
    url, blob_url = old_logs["url"], old_logs["blob_url"]
    args = ["archive", "logs", "--chunk-rows", str(CHUNK), "--url", url, "--blob-url", blob_url]
    process = _start(*args)
    await _interrupt_after(process, url, after, sig)
    out, err = await asyncio.to_thread(process.communicate, timeout=120)
    assert process.returncode == code, (out, err)
    said = " ".join(err.split())
    name = signal.Signals(sig).name
    assert f"interrupted ({name}): execstore archive logs stopped after" in said
    assert "running it again continues where it stopped" in said
    assert "Traceback" not in err
    assert "unexpected" not in said
    assert after <= await _chunks(url) < JOBS
    await _every_line_once(old_logs)  # hot, detached or archived: each readable once

    again = await asyncio.to_thread(
        subprocess.run, [EXECSTORE, *args], capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, (again.stdout, again.stderr)
    assert await _archived(url) == (JOBS, JOBS * LINES, 0)
    await _every_line_once(old_logs)


async def _every_line_once(old_logs: dict[str, Any]) -> None:
    async with ExecStore.open(old_logs["settings"]) as store:
        for n, job in enumerate(old_logs["jobs"]):
            read = await read_all(store, old_logs["org"], job, limit=1000)
            written = lines(LINES, seed=n, tag=f"{n}:")
            assert [e.message for e in read] == [e.message for e in written]


async def test_a_command_without_batches_stops_at_once_on_sigterm(tmp_path: Path) -> None:
    """``storage-report --simulate`` has no batch boundary to wait for: it is cancelled."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    process = _start("storage-report", "--simulate", "--jobs", "400", "--url", url)
    assert process.stderr is not None
    first = await asyncio.to_thread(process.stderr.readline)  # its first step has begun
    process.send_signal(signal.SIGTERM)
    out, err = await asyncio.to_thread(process.communicate, timeout=120)
    err = first + err
    assert process.returncode == 143, (out, err)
    assert "interrupted (SIGTERM): execstore storage-report stopped" in " ".join(err.split())
    assert "Traceback" not in err
