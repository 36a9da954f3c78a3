"""The operator's commands: db upgrade / current / downgrade, on both backends."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from execstore.cli import app
from execstore.migrations.runner import head_revision


def test_db_upgrade_current_and_downgrade_to_base(fresh_db_url: str, monkeypatch) -> None:
    monkeypatch.setenv("EXECSTORE_DATABASE_URL", fresh_db_url)
    runner = CliRunner()
    up = runner.invoke(app, ["db", "upgrade"])
    assert up.exit_code == 0, up.output
    assert head_revision() in up.output
    now = runner.invoke(app, ["db", "current"])
    assert "up to date" in now.output
    down = runner.invoke(app, ["db", "downgrade", "base"])
    assert down.exit_code == 0, down.output
    assert "base (empty)" in down.output
    behind = runner.invoke(app, ["db", "current"])
    assert "behind" in behind.output


def test_bad_settings_exit_with_a_message(monkeypatch) -> None:
    monkeypatch.setenv("EXECSTORE_DATABASE_URL", "mysql://nope")
    result = CliRunner().invoke(app, ["db", "current"])
    assert result.exit_code == 1
    assert "EXECSTORE_DATABASE_URL" in result.output
    assert "Traceback" not in result.output


@pytest.mark.sqlite
def test_demo_runs_the_main_job_on_the_embedded_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EXECSTORE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
    monkeypatch.setenv("EXECSTORE_BLOB_URL", f"file:{tmp_path / 'blobs'}")
    result = CliRunner().invoke(app, ["demo"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "saved the results of 12 jobs" in result.output
    assert "screenshot_count=6" in result.output
    assert len(list((tmp_path / "blobs").rglob("*.json.gz"))) == 12
