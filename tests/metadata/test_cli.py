"""``execstore backfill metadata [--check]`` and ``execstore maintain`` end to end."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from typer.testing import CliRunner

from execstore.cli import app

from .conftest import make_world, new_job


async def invoke(url: str, *args: str) -> Any:
    argv = [*args, "--url", url, "--blob-url", "file:/tmp/execstore-cli-unused"]
    # The command runs its own event loop; keep it off the test's loop.
    return await asyncio.to_thread(CliRunner().invoke, app, argv)


def last_json(output: str) -> dict[str, Any]:
    return dict(json.loads(output.strip().splitlines()[-1]))


async def test_backfill_and_check_report_and_exit_3_on_problems(legacy_store: Any) -> None:
    _, world, url = legacy_store
    dry = await invoke(url, "backfill", "metadata", "--dry-run")
    assert dry.exit_code == 3, dry.output
    assert "backfill metadata (dry run)" in dry.output
    assert "paused-by-ops" in dry.output

    moved = await invoke(url, "backfill", "metadata", "--batch-size", "5", "--json")
    assert moved.exit_code == 3, moved.output
    [report] = last_json(moved.stdout)["reports"]
    assert (report["counts"]["moved"], report["needs_attention"]) == (35, True)
    assert {row["key"]: row["reason"] for row in report["set_aside"]} == {
        world.metadata_ids["unknown_status"]: "unknown status 'paused-by-ops'",
        world.metadata_ids["orphan"]: f"job {world.job_uuid('orphan')} no longer exists",
    }

    check = await invoke(url, "backfill", "metadata", "--check")
    assert check.exit_code == 3, check.output
    assert "unexplained" in check.output
    assert "all_account_ids" in check.output
    as_json = await invoke(url, "backfill", "metadata", "--check", "--json")
    assert as_json.exit_code == 3, as_json.output
    [data] = last_json(as_json.stdout)["reports"]
    assert (data["needs_attention"], data["details"]["complete"]) == (True, False)
    assert data["counts"]["explained_renamed"] == 34
    assert (data["counts"]["unexplained"], data["counts"]["unmigrated"]) == (1, 1)
    assert data["set_aside"][0]["reason"] == "unknown status 'paused-by-ops'"
    assert [x["field"] for x in data["details"]["unexplained"]] == ["all_account_ids"]


async def test_maintain_refreshes_summaries(store: Any, db_url: str, backend: str) -> None:
    world = await make_world(store)
    await new_job(store, world)
    result = await invoke(db_url, "maintain", "--json")
    assert result.exit_code == 0, result.output
    (step,) = [s for s in last_json(result.stdout)["steps"] if s["name"] == "summaries"]
    if backend == "postgres":
        assert step["status"] == "done"
        assert step["details"]["groups"] >= 1
    else:
        assert step["status"] == "skipped"
        assert "SQLite" in step["details"]["reason"]
    rebuilt = await invoke(db_url, "maintain", "--rebuild-summaries")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "summaries" in rebuilt.output


async def test_maintain_rejects_an_unknown_step(db_url: str) -> None:
    result = await invoke(db_url, "maintain", "--only", "partitions-typo")
    assert result.exit_code == 2
    assert "unknown step" in result.output
