"""The audit commands: ``audit verify|checkpoint``, ``archive audit``, ``backfill audit``,
``retention run``."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from typer.testing import CliRunner

from execstore.cli import app
from execstore.config import AUDIT_RETENTION_FLOOR_DAYS

from .conftest import access, execute


async def invoke(settings: Any, *args: str) -> Any:
    argv = [*args, "--url", settings.database_url, "--blob-url", settings.blob_url]
    return await asyncio.to_thread(CliRunner().invoke, app, argv)


async def test_verify_names_the_first_bad_record_and_exits_3(
    store: Any, settings: Any, org: uuid.UUID
) -> None:
    async with store.unit(org) as uow:
        await uow.audit.record_many([access(i) for i in range(6)])
    scope = ["--org", str(org)]
    checkpoint = await invoke(settings, "audit", "checkpoint", *scope, "--json")
    assert checkpoint.exit_code == 0, checkpoint.output
    good = await invoke(settings, "audit", "verify", *scope, "--json")
    assert good.exit_code == 0, good.output
    assert json.loads(good.output.strip().splitlines()[-1])["needs_attention"] is False
    await execute(
        store,
        "UPDATE phi_audit_log SET resource_id = 'x' WHERE organization_id = :org AND seq = 4",
        org=org,
    )
    bad = await invoke(settings, "audit", "verify", *scope)
    assert bad.exit_code == 3, bad.output
    assert "edited at record 4" in bad.output
    data = await invoke(settings, "audit", "verify", *scope, "--json", "--since", "2000-01-01")
    assert data.exit_code == 3
    [report] = json.loads(data.output.strip().splitlines()[-1])["reports"]
    assert [a["key"] for a in report["set_aside"]] == [str(org)]
    problem = report["details"]["organizations"][0]["problem"]
    assert (problem["seq"], problem["kind"]) == (4, "edited")


async def test_archive_backfill_and_retention_commands(
    store: Any, settings: Any, org: uuid.UUID
) -> None:
    async with store.unit(org) as uow:
        await uow.audit.record_many([access(i) for i in range(4)])
    scope = ["--org", str(org)]
    dry = await invoke(settings, "archive", "audit", "--dry-run", "--hot-days", "0", *scope)
    assert dry.exit_code == 0, dry.output
    real = await invoke(settings, "archive", "audit", "--hot-days", "0", *scope, "--json")
    assert real.exit_code == 0, real.output
    [archived] = json.loads(real.output.strip().splitlines()[-1])["reports"]
    assert archived["counts"]["records"] == 4
    check = await invoke(settings, "backfill", "audit", "--dry-run", "--json")
    assert check.exit_code == 0, check.output
    [backfill] = json.loads(check.output.strip().splitlines()[-1])["reports"]
    # head: the legacy table is gone, nothing is left
    assert (backfill["details"]["legacy_table"], backfill["details"]["complete"]) == (False, True)
    refused = await invoke(settings, "retention", "run", "--kind", "audit", "--audit-days", "30")
    assert refused.exit_code == 1
    assert "six years" in refused.output
    kept = await invoke(
        settings,
        "retention",
        "run",
        "--dry-run",
        "--audit-days",
        str(AUDIT_RETENTION_FLOOR_DAYS),
        *scope,
        "--json",
    )
    assert kept.exit_code == 0, kept.output
    [audit] = [
        r
        for r in json.loads(kept.output.strip().splitlines()[-1])["reports"]
        if r["job"] == "retention audit"
    ]
    assert (audit["counts"]["archives"], audit["details"]["retention_days"]) == (
        0,
        AUDIT_RETENTION_FLOOR_DAYS,
    )
    reconcile = await invoke(settings, "archive", "reconcile", "--grace-minutes", "0", *scope)
    assert reconcile.exit_code == 0, reconcile.output  # checkpoints are evidence, not orphans
