"""Every script in ``examples/`` runs as printed, on SQLite and on PostgreSQL.

Each runs in a fresh database and blob directory, as a new user would run it, in its own
process; what it prints is checked against what it is meant to show.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.postgres import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

EXPECTED = {
    "workflow_processor.py": [
        "result summary: success=True, steps=2",
        "execution: Claim status check COMPLETED 100.00%",
        "rules used: ['R-00042']",
        "log: ['Logged in to Availity', 'Claim CLM000123 is PAID']",
    ],
    "dashboard.py": [
        "pages: 10 + 10 executions, newest first",
        "one: Dr. Lee Family Practice (NPI 1234567893), accounts ['UHC portal']",
        "summary: 25 completed, 5 failed",
    ],
    "operator_routine.py": [
        "archive logs: 20 line(s) in 1 chunk(s)",
        "retention logs: 0 archive(s) deleted",
        "reconcile results: attention=False; reconcile logs: attention=False; "
        "reconcile audit: attention=False",
        "audit verify: 1 record(s), intact=True",
    ],
    "logs.py": [
        "archived 2 old line(s) in 1 chunk(s)",
        "Claim CLM000123 is PAID",
        "warnings: ['Re-checked: still PAID']",
        "last line: Re-checked: still PAID",
    ],
}


def test_every_example_is_checked() -> None:
    assert {path.name for path in EXAMPLES} == set(EXPECTED)


@pytest.fixture
async def example_db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'example.db'}"
        return
    server = request.getfixturevalue("pg_server")
    name = await create_database(server, prefix="execstore_example")
    yield server.url(name)
    await drop_database(server, name)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_as_printed(example: Path, example_db: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "EXECSTORE_DATABASE_URL": example_db,
        "EXECSTORE_BLOB_URL": f"file:{tmp_path / 'blobs'}",
    }
    done = subprocess.run(
        [sys.executable, str(example)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for line in EXPECTED[example.name]:
        assert line in done.stdout, done.stdout
