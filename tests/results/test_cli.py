"""``execstore archive results`` and ``execstore archive reconcile`` end to end."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from typer.testing import CliRunner

from execstore.cli import app
from execstore.results.format import result_archive_key
from execstore.schema import models as m

from .conftest import BASE, new_jobs, put_result_document, result_blobs
from .test_archival import legacy_left, make_legacy_jobs


async def invoke(settings: Any, *args: str) -> Any:
    argv = [*args, "--url", settings.database_url, "--blob-url", settings.blob_url]
    # The command runs its own event loop; keep it off the test's loop.
    return await asyncio.to_thread(CliRunner().invoke, app, argv)


async def test_archive_results_dry_run_then_real_then_reconcile(
    store: Any, settings: Any, org: uuid.UUID
) -> None:
    await make_legacy_jobs(store, org, 3, legacy_rows=1)
    scope = ["--org", str(org)]
    dry = await invoke(settings, "archive", "results", "--dry-run", *scope)
    assert dry.exit_code == 0, dry.output
    assert "would free" in dry.output
    assert await legacy_left(store, org) == 3

    real = await invoke(
        settings,
        "archive",
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
    assert "jobs archived" in real.output
    assert await legacy_left(store, org) == 1
    rest = await invoke(settings, "archive", "results", *scope)
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
