"""The operator commands take their windows from the settings, to the day.

Records and log lines are written on a clock 100 days behind the wall, so the commands
(which run on the wall clock) see them 100 days old: ``archive audit`` moves them once
``EXECSTORE_AUDIT_HOT_DAYS`` is 99, not at 101; ``retention run --kind logs`` deletes the
chunk once ``EXECSTORE_LOG_RETENTION_DAYS`` (the default retention) is 99, not at 101.
Each runs as a dry run first: what it would do is all that differs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
from typer.testing import CliRunner

from execstore.cli import app
from execstore.clock import ManualClock
from execstore.logs import NewLogEntry, archive_logs
from support.timeline import new_job, new_org

AGE = dt.timedelta(days=100)


async def _json(store: Any, *args: str) -> dict[str, Any]:
    argv = [
        *args,
        "--json",
        "--url",
        store.settings.database_url,
        "--blob-url",
        store.settings.blob_url,
    ]
    result = await asyncio.to_thread(CliRunner().invoke, app, argv)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def _count(store: Any, name: str, *args: str) -> int:
    """The count ``name`` of the one report the command printed with ``--json``."""
    [report] = (await _json(store, *args))["reports"]
    return int(report["counts"][name])


async def test_archive_audit_and_log_retention_read_their_days_from_the_settings(
    store_at: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    then = dt.datetime.now(dt.UTC) - AGE
    clock = ManualClock(then)
    async with store_at(clock) as store:
        org, workflow = await new_org(store)
        job = await new_job(store, org, workflow)
        async with store.unit(org) as uow:
            await uow.audit.record({"action": "view", "resource_type": "claim"})
            await uow.logs.append(job, [NewLogEntry("100 days ago")])
        clock.set(dt.datetime.now(dt.UTC))
        await archive_logs(store.engine, store.sessions, store.archives, hot_days=30, clock=clock)
        scope = ["--org", str(org)]

        monkeypatch.setenv("EXECSTORE_AUDIT_HOT_DAYS", "101")
        assert await _count(store, "records", "archive", "audit", *scope, "--dry-run") == 0
        monkeypatch.setenv("EXECSTORE_AUDIT_HOT_DAYS", "99")
        assert await _count(store, "records", "archive", "audit", *scope, "--dry-run") == 1

        retention = ["retention", "run", "--kind", "logs", *scope]
        monkeypatch.setenv("EXECSTORE_LOG_RETENTION_DAYS", "101")
        assert await _count(store, "archives", *retention, "--dry-run") == 0
        monkeypatch.setenv("EXECSTORE_LOG_RETENTION_DAYS", "99")
        assert await _count(store, "archives", *retention, "--dry-run") == 1
        assert await _count(store, "archives", *retention) == 1
        async with store.unit(org) as uow:
            assert (await uow.logs.for_job(job)).items == []
