"""Every ``execstore`` command: its help, and a dry run that changes nothing.

The command tree is read from the app itself, so a command added later is covered (its
help must run, and if it can delete it must offer ``--dry-run`` and be exercised here).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from execstore.cli import app

ROOT = typer.main.get_command(app)


def _commands(command: Any = ROOT, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if hasattr(command, "commands"):
        found = [(path, command)] if path else []
        for name, sub in sorted(command.commands.items()):
            found += _commands(sub, (*path, name))
        return found
    return [(path, command)]


COMMANDS = _commands()
LEAVES = [path for path, command in COMMANDS if not hasattr(command, "commands")]

# Commands that delete or move data, each with the arguments of its dry run.
DRY_RUNS: dict[tuple[str, ...], list[str]] = {
    ("archive", "results"): [],
    ("archive", "logs"): [],
    ("archive", "audit"): [],
    ("backfill", "metadata"): [],
    ("backfill", "rag"): [],
    ("backfill", "logs"): [],
    ("backfill", "audit"): [],
    ("retention", "run"): [],
    ("db", "downgrade"): ["compact_phi_audit"],  # undoes the contract steps
}
# The rest only read, or write what nobody loses (partitions ahead, checkpoints, an
# organization's retention setting), or are the demo; each runs here once anyway.
READ_ONLY: dict[tuple[str, ...], list[str]] = {
    ("archive", "reconcile"): [],
    ("audit", "verify"): [],
    ("audit", "checkpoint"): [],
    ("db", "current"): [],
    ("maintain",): [],
    ("storage-report",): [],
    ("retention", "show"): ["--org", "{org}"],
}
NOT_HERE = {
    ("demo",): "its own test runs it (tests/foundation/test_cli.py)",
    ("db", "upgrade"): "tests/foundation/test_cli.py",
    ("db", "stamp"): "tests/foundation/test_settings_wiring.py",
    ("db", "history"): "tests/cli/test_db.py",
    ("db", "heads"): "tests/cli/test_db.py",
    ("retention", "set"): "tests/logs/test_cli.py",
}


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=" ".join)
def test_help_runs(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=160)
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_every_command_is_exercised_below_and_every_deleting_one_has_a_dry_run() -> None:
    covered = set(DRY_RUNS) | set(READ_ONLY) | set(NOT_HERE)
    assert set(LEAVES) == covered
    for path, command in COMMANDS:
        if path in DRY_RUNS:
            assert "dry_run" in [p.name for p in command.params], path


def test_errors_are_one_line_and_usage_is_exit_2() -> None:
    usage = CliRunner().invoke(app, ["archive", "logs", "--no-such-option"])
    assert usage.exit_code == 2
    failed = CliRunner().invoke(
        app, ["db", "current", "--url", "postgresql+asyncpg://nobody@127.0.0.1:1/none"]
    )
    assert failed.exit_code == 1
    assert "Traceback" not in failed.output
    assert failed.output.count("error:") == 1


async def _counts(store: Any) -> dict[str, int]:
    from execstore.report.sizes import measure_tables

    async with store.engine.connect() as conn:
        return {t.name: t.rows for t in await measure_tables(conn, exact=True)}


async def test_dry_runs_change_nothing(store: Any, settings: Any, org: uuid.UUID) -> None:
    async with store.unit(org) as uow:
        wf = await uow.reference.add_workflow("Eligibility check")
        job = await uow.jobs.create(workflow_id=wf.id)
        await uow.results.save(job.id, {"success": True})
    before = await _counts(store)
    blobs = sorted([info.key async for info in store.blobs.list("")])
    common = ["--url", settings.database_url]
    for path, args in DRY_RUNS.items():
        blob = [] if path[0] == "db" else ["--blob-url", settings.blob_url]
        argv = [*path, *args, "--dry-run", *common, *blob]
        result = await asyncio.to_thread(CliRunner().invoke, app, argv, terminal_width=160)
        assert result.exit_code in (0, 3), (argv, result.output)
        assert "Traceback" not in result.output
    assert await _counts(store) == before
    assert sorted([info.key async for info in store.blobs.list("")]) == blobs


async def test_read_only_commands_run_and_speak_json(
    store: Any, settings: Any, org: uuid.UUID
) -> None:
    async with store.unit(org) as uow:
        await uow.reference.add_workflow("Eligibility check")
    for path, args in READ_ONLY.items():
        argv = [*path, *[a.format(org=org) for a in args], "--url", settings.database_url]
        if path[0] != "db":
            argv += ["--blob-url", settings.blob_url]
        argv += ["--json"]
        result = await asyncio.to_thread(CliRunner().invoke, app, argv, terminal_width=160)
        assert result.exit_code in (0, 3), (argv, result.output)
        if "--json" in argv:
            assert isinstance(json.loads(result.stdout.strip().splitlines()[-1]), dict), argv
