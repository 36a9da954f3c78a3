"""Every ``execstore`` command: its help, and a dry run that changes nothing.

The command tree is read from the app itself, so a command added later is covered (its
help must run, and if it can delete it must offer ``--dry-run`` and be exercised here).
"""

from __future__ import annotations

import asyncio
import importlib
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
    ("backfill", "results"): [],
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


# Every batch command, and the function its job calls (patched below: what the CLI does
# with the report is under test here; each job's own reports are tested with its
# capability, on real databases).
BATCH: dict[tuple[str, ...], tuple[str, str, list[str]]] = {
    ("archive", "logs"): ("execstore.cli.archive", "archive_logs", []),
    ("archive", "audit"): ("execstore.cli.archive", "archive_audit", []),
    ("archive", "reconcile"): ("execstore.cli.archive", "reconcile", []),
    ("backfill", "results"): ("execstore.cli.backfill", "backfill_results", []),
    ("backfill", "metadata"): ("execstore.cli.backfill", "backfill_metadata", []),
    ("backfill", "metadata", "--check"): ("execstore.cli.backfill", "check_metadata", []),
    ("backfill", "rag"): ("execstore.cli.backfill", "backfill_rag", []),
    ("backfill", "logs"): ("execstore.cli.backfill", "backfill_logs", []),
    ("backfill", "audit"): ("execstore.cli.backfill", "backfill_audit", []),
    ("retention", "run"): ("execstore.store", "ExecStore.apply_retention", []),
    ("audit", "verify"): ("execstore.cli.audit", "verify_audit", []),
    ("audit", "checkpoint"): ("execstore.cli.audit", "checkpoint_organizations", []),
}


def test_every_batch_command_is_built_from_one_place() -> None:
    from execstore.cli import batch

    leaves = {p for p in LEAVES if p[0] in ("archive", "backfill", "audit")}
    assert leaves | {("retention", "run")} == {p for p in BATCH if "--check" not in p}
    for path in BATCH:
        module = importlib.import_module(f"execstore.cli.{path[0]}")
        assert module.run_batch is batch.run_batch, path


@pytest.mark.parametrize("path", list(BATCH), ids=" ".join)
@pytest.mark.parametrize("aside", [False, True], ids=["clean", "set-aside"])
async def test_a_report_needing_attention_exits_3_with_its_rows_and_reasons(
    path: tuple[str, ...], aside: bool, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execstore.operations import BatchReport

    module, name, args = BATCH[path]
    report = BatchReport.start(" ".join(path), "moved", "remaining")
    report.add(moved=2)
    if aside:
        report.aside("row-17", "ValueError: not a status")

    async def job(*_: Any, on_progress: Any = None, **__: Any) -> Any:
        if on_progress is not None:
            on_progress(1, 2)
        return [report] if name == "reconcile" else report

    owner, _, attribute = name.rpartition(".")
    target = importlib.import_module(module)
    monkeypatch.setattr(getattr(target, owner) if owner else target, attribute, job)
    common = ["--url", settings.database_url, "--blob-url", settings.blob_url]
    shown = await asyncio.to_thread(
        CliRunner().invoke, app, [*path, *args, *common], terminal_width=160
    )
    assert shown.exit_code == (3 if aside else 0), shown.output
    assert "moved" in shown.output
    assert ("row-17" in shown.output) is aside
    assert ("ValueError: not a status" in shown.output) is aside
    data = await asyncio.to_thread(
        CliRunner().invoke, app, [*path, *args, "--json", *common], terminal_width=160
    )
    assert data.exit_code == (3 if aside else 0), data.output
    printed = json.loads(data.stdout.strip().splitlines()[-1])
    assert printed["needs_attention"] is aside
    mine = [r for r in printed["reports"] if r["job"] == report.job]
    assert mine, printed  # the others (audit checkpoint trains dictionaries too) ran for real
    for found in mine:
        assert (found["counts"]["moved"], found["needs_attention"]) == (2, aside)
        assert found["set_aside"] == (
            [{"key": "row-17", "reason": "ValueError: not a status"}] if aside else []
        )
