"""The log commands end to end: maintain, archive logs, retention, backfill logs."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import sqlalchemy as sa
from typer.testing import CliRunner

from execstore.cli import app
from execstore.schema import models as m
from support.timeline import new_jobs

from .conftest import hot_count, lines, months_ago


async def invoke(settings: Any, *args: str, blob: bool = True) -> Any:
    argv = [*args, "--url", settings.database_url]
    if blob:
        argv += ["--blob-url", settings.blob_url]
    # The command runs its own event loop; keep it off the test's loop.
    return await asyncio.to_thread(CliRunner().invoke, app, argv)


def last_json(output: str) -> dict[str, Any]:
    return json.loads(output.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def test_maintain_reports_the_partition_step(settings: Any, backend: str) -> None:
    done = await invoke(settings, "maintain", "--json")
    assert done.exit_code == 0, done.output
    [step] = [s for s in last_json(done.output)["steps"] if s["name"] == "partitions"]
    if backend == "postgres":
        assert step["status"] == "done"
        assert step["details"]["partitions"] >= 4
    else:
        assert step["status"] == "skipped"
        assert step["details"]["reason"] == "SQLite has no partitions"


async def test_archive_logs_dry_run_then_real(store: Any, settings: Any, org: uuid.UUID) -> None:
    (job,) = await new_jobs(store, org)
    async with store.unit(org) as uow:
        await uow.logs.append(job, lines(12, start=months_ago(3)))
    dry = await invoke(settings, "archive", "logs", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    [report] = last_json(dry.output)["reports"]
    assert (report["dry_run"], report["counts"]["lines_eligible"]) == (True, 12)
    assert await hot_count(store, job) == 12
    real = await invoke(settings, "archive", "logs", "--chunk-rows", "5")
    assert real.exit_code == 0, real.output
    assert "archive logs" in real.output
    assert "lines archived" in real.output
    assert await hot_count(store, job) == 0


async def test_archive_logs_exits_3_when_lines_are_set_aside(
    store: Any, settings: Any, org: uuid.UUID
) -> None:
    (job,) = await new_jobs(store, org)
    async with store.unit(org) as uow:
        await uow.logs.append(job, lines(2, start=months_ago(4)))
    async with store.sessions() as session, session.begin():
        await session.execute(sa.delete(m.Job).where(m.Job.id == job))
    try:
        found = await invoke(settings, "archive", "logs", "--json")
        assert found.exit_code == 3, found.output
        [report] = last_json(found.output)["reports"]
        assert report["needs_attention"]
        assert [a["key"] for a in report["set_aside"]] == [f"job {job}"]
    finally:
        from execstore.logs.repository import detached_tables

        async with store.sessions() as session, session.begin():
            for table in [m.ExecutionLogEntry.__table__, *await detached_tables(session)]:
                await session.execute(sa.delete(table).where(table.c.job_id == job))
    assert (await invoke(settings, "archive", "logs")).exit_code == 0


async def test_retention_set_show_and_refuse(store: Any, settings: Any, org: uuid.UUID) -> None:
    too_short = await invoke(
        settings, "retention", "set", "--org", str(org), "--days", "7", blob=False
    )
    assert too_short.exit_code == 1
    assert "shorter than the hot window" in too_short.output
    changed = await invoke(
        settings, "retention", "set", "--org", str(org), "--days", "90", "--json", blob=False
    )
    assert changed.exit_code == 0, changed.output
    assert last_json(changed.output)["retention_days"] == 90
    shown = await invoke(settings, "retention", "show", "--org", str(org), blob=False)
    assert "90" in shown.output
    assert "own setting" in shown.output
    usage = await invoke(settings, "retention", "set", "--org", str(org), blob=False)
    assert usage.exit_code == 2
    ran = await invoke(settings, "retention", "run", "--dry-run", "--org", str(org), "--json")
    assert ran.exit_code == 0, ran.output
    reports = last_json(ran.output)["reports"]
    assert [(r["job"], r["dry_run"]) for r in reports] == [
        ("retention logs", True),
        ("retention audit", True),
    ]


async def test_backfill_logs_with_nothing_to_move(settings: Any) -> None:
    done = await invoke(settings, "backfill", "logs", "--dry-run", "--json", blob=False)
    assert done.exit_code == 0, done.output
    [report] = last_json(done.output)["reports"]
    assert report["dry_run"] is True
    assert report["counts"]["legacy_rows"] == 0
