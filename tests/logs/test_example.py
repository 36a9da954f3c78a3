"""examples/logs.py runs as printed (on SQLite and a local blob directory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.sqlite
def test_the_logs_example_runs(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "EXECSTORE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'example.db'}",
        "EXECSTORE_BLOB_URL": f"file:{tmp_path / 'blobs'}",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "logs.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "archived 2 old line(s) in 1 chunk(s)" in done.stdout
    assert "Claim CLM000123 is PAID" in done.stdout
    assert "warnings: ['Re-checked: still PAID']" in done.stdout
    assert "last line: Re-checked: still PAID" in done.stdout
