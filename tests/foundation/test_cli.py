"""The operator's commands: db upgrade / current / downgrade, on both backends."""

from __future__ import annotations

import contextlib
import sqlite3
import threading

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


def test_a_bad_url_option_is_named_as_the_option_and_unknown_variables_warned(
    monkeypatch,
) -> None:
    monkeypatch.setenv("EXECSTORE_LOG_HOT_DAY", "10")
    result = CliRunner().invoke(app, ["db", "current", "--url", "mysql://nope"])
    assert result.exit_code == 1
    assert "--url: must start with" in result.output
    assert "EXECSTORE_DATABASE_URL" not in result.output
    assert "warning: EXECSTORE_LOG_HOT_DAY is not an execstore setting" in result.output
    assert "did you mean EXECSTORE_LOG_HOT_DAYS?" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql+asyncpg://nobody@127.0.0.1:1/x", "Connect call failed"),  # nothing listens
        ("sqlite+aiosqlite:///{tmp}", "unable to open database file"),  # a directory
    ],
)
@pytest.mark.parametrize("command", [["db", "current"], ["storage-report"]])
# aiosqlite's worker thread for a connection that failed to open reports its closing to
# the event loop after asyncio.run has closed it: noise from the driver, not a failure.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_unreachable_database_is_one_line_naming_the_setting(
    url: str, says: str, command: list[str], monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("EXECSTORE_DATABASE_URL", url.format(tmp=tmp_path))
    result = CliRunner().invoke(app, command)
    for thread in threading.enumerate():  # let aiosqlite's thread end within this test
        if "_connection_worker_thread" in thread.name:
            thread.join(timeout=5)
    assert result.exit_code == 1
    assert says in result.output
    assert "unexpected" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.sqlite
def test_demo_runs_a_day_on_its_own_embedded_database(tmp_path, monkeypatch) -> None:
    """The day in the life: every stage runs, archival and retention act, the chain holds;
    on the demo's own database, never the configured one."""
    monkeypatch.chdir(tmp_path)  # the demo's database lives in ./.execstore/demo
    configured = tmp_path / "production.db"
    monkeypatch.setenv("EXECSTORE_DATABASE_URL", f"sqlite+aiosqlite:///{configured}")
    monkeypatch.setenv("EXECSTORE_BLOB_URL", f"file:{tmp_path / 'production-blobs'}")
    result = CliRunner().invoke(app, ["demo"], terminal_width=200)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "24 jobs today and 8 from the backlog" in out
    assert "retention: 1 archived chunk(s) older than 365 days deleted" in out
    assert "all blobs present" in out
    assert "(cache hits 0 -> 1)" in out
    assert "intact" in out
    assert (tmp_path / ".execstore" / "demo" / "execstore.db").exists()
    assert len(list((tmp_path / ".execstore" / "demo" / "blobs").rglob("result.json.gz"))) == 32
    assert not configured.exists()
    assert not (tmp_path / "production-blobs").exists()
    again = CliRunner().invoke(app, ["demo"], terminal_width=200)  # its own: emptied first
    assert again.exit_code == 0, again.output
    assert len(list((tmp_path / ".execstore" / "demo" / "blobs").rglob("result.json.gz"))) == 32


@pytest.mark.sqlite
def test_demo_refuses_an_explicit_database_that_holds_organizations(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite+aiosqlite:///{tmp_path / 'used.db'}"
    blobs = f"file:{tmp_path / 'blobs'}"
    first = CliRunner().invoke(app, ["demo", "--url", url, "--blob-url", blobs, "--jobs", "2"])
    assert first.exit_code == 0, first.output  # empty: allowed when named explicitly

    def counts() -> tuple[int, int]:
        with contextlib.closing(sqlite3.connect(tmp_path / "used.db")) as db:
            return (
                db.execute("SELECT count(*) FROM organizations").fetchone()[0],
                db.execute("SELECT count(*) FROM jobs").fetchone()[0],
            )

    before = counts()
    second = CliRunner().invoke(app, ["demo", "--url", url, "--blob-url", blobs])
    assert second.exit_code == 1
    said = " ".join(second.output.split())  # the console wraps long lines
    assert "runs only on an empty database" in said
    assert "holds 2 organization(s)" in said
    assert counts() == before
    assert before[0] == 2
