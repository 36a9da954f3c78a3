"""``execstore backfill results`` and ``execstore archive reconcile`` end to end."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from typing import Any

import sqlalchemy as sa
from typer.testing import CliRunner

from execstore.cli import app
from execstore.results.format import result_archive_key
from execstore.schema import models as m
from support.timeline import new_jobs

from .conftest import BASE, put_result_document, result_blobs
from .test_archival import legacy_left, make_legacy_jobs


async def invoke(settings: Any, *args: str) -> Any:
    argv = [*args, "--url", settings.database_url, "--blob-url", settings.blob_url]
    # The command runs its own event loop; keep it off the test's loop.
    return await asyncio.to_thread(CliRunner().invoke, app, argv)


async def test_backfill_results_dry_run_then_real_then_reconcile(
    store: Any, settings: Any, org: uuid.UUID
) -> None:
    await make_legacy_jobs(store, org, 3, legacy_rows=1)
    scope = ["--org", str(org)]
    dry = await invoke(settings, "backfill", "results", "--dry-run", *scope)
    assert dry.exit_code == 0, dry.output
    assert "backfill results (dry run)" in dry.output
    assert await legacy_left(store, org) == 3

    real = await invoke(
        settings,
        "backfill",
        "results",
        "--batch-size",
        "2",
        "--limit",
        "2",
        "--screenshot-base",
        BASE,
        *scope,
    )
    assert real.exit_code == 0, real.output
    assert "remaining" in real.output
    assert await legacy_left(store, org) == 1
    rest = await invoke(settings, "backfill", "results", *scope)
    assert rest.exit_code == 0, rest.output
    assert await legacy_left(store, org) == 0

    (job,) = await new_jobs(store, org)
    async with store.sessions() as session:
        created = (await session.get(m.Job, job)).created_at
    orphan = result_archive_key(org, job, created, store.archives.codec)
    await put_result_document(store.archives, orphan, {"orphan": 1})
    found = await invoke(settings, "archive", "reconcile", "--grace-minutes", "0", *scope)
    assert found.exit_code == 3, found.output  # found problems
    assert orphan in await result_blobs(store)
    fixed = await invoke(
        settings, "archive", "reconcile", "--repair", "--grace-minutes", "0", *scope
    )
    assert fixed.exit_code == 0, fixed.output
    assert orphan not in await result_blobs(store)
    assert len(await result_blobs(store)) == 3


async def test_backfill_results_lists_set_aside_jobs_and_exits_3(
    store: Any, settings: Any, org: uuid.UUID
) -> None:
    outputs = await make_legacy_jobs(store, org, 3)
    bad = sorted(outputs)[1]
    deep: Any = 0
    for _ in range(120):
        deep = [deep]
    async with store.sessions() as session, session.begin():
        await session.execute(
            sa.update(m.Job).where(m.Job.id == bad).values(result={"success": True, "x": deep})
        )
    scope = ["--org", str(org)]
    shown = await invoke(settings, "backfill", "results", *scope)
    assert shown.exit_code == 3, shown.output
    assert "backfill results: set aside" in shown.output
    assert str(bad) in shown.output
    assert "deeper than 100" in shown.output
    as_json = await invoke(settings, "backfill", "results", "--json", *scope)
    assert as_json.exit_code == 3, as_json.output
    data = json.loads(as_json.stdout.strip().splitlines()[-1])
    [report] = data["reports"]
    assert (data["needs_attention"], report["needs_attention"]) == (True, True)
    assert report["counts"]["moved"] == 0  # the two good ones went in the first run
    assert report["counts"]["remaining"] == 1
    assert [item["key"] for item in report["set_aside"]] == [str(bad)]
    assert "InvalidJsonValue" in report["set_aside"][0]["reason"]
    assert await legacy_left(store, org) == 1


async def test_reconcile_repair_removes_and_reports_crash_leftovers(
    store: Any, settings: Any, org: uuid.UUID
) -> None:
    """Defect J: a killed local write's .tmp-* file stayed forever."""
    (job,) = await new_jobs(store, org)
    async with store.sessions() as session:
        created = (await session.get(m.Job, job)).created_at
    key = result_archive_key(org, job, created, store.archives.codec)
    folder = store.blobs.root.joinpath(*key.split("/")[:-1])
    folder.mkdir(parents=True)
    leftover = folder / f".result.json.gz.tmp-{uuid.uuid4().hex}"
    leftover.write_bytes(b"half a gzip stream")
    an_hour_ago = time.time() - 3600
    os.utime(leftover, (an_hour_ago, an_hour_ago))
    relative = leftover.relative_to(store.blobs.root).as_posix()
    scope = ["--org", str(org), "--grace-minutes", "30"]

    found = await invoke(settings, "archive", "reconcile", "--json", *scope)
    assert found.exit_code == 3, found.output  # a leftover nobody removed is a problem
    reports = json.loads(found.stdout.strip().splitlines()[-1])["reports"]
    (report,) = [r for r in reports if r["job"] == "reconcile results"]
    assert report["details"]["leftovers"] == [relative]
    assert [item["key"] for item in report["set_aside"]] == [relative]
    assert leftover.exists()

    fixed = await invoke(settings, "archive", "reconcile", "--repair", *scope)
    assert fixed.exit_code == 0, fixed.output
    assert "reconcile results: leftovers:" in fixed.output
    assert relative in fixed.output.replace("\n", "")
    assert not leftover.exists()
    young = folder / f".result.json.gz.tmp-{uuid.uuid4().hex}"
    young.write_bytes(b"a put still running")
    again = await invoke(settings, "archive", "reconcile", "--repair", "--json", *scope)
    assert again.exit_code == 0, again.output
    assert (
        json.loads(again.stdout.strip().splitlines()[-1])["reports"][0]["details"]["leftovers"]
        == []
    )
    assert young.exists()  # within the grace period: left alone
