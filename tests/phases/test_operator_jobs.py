"""Every operator job in every phase of the online migrations, then the contract steps.

One legacy database per backend walks the migration of README's "Migrating an existing
database, step by step": nothing moved; every backfill part-way (logs copying); metadata
moved and checked while RAG is part-way; RAG verified while logs are swapped but not
verified; logs failing verification; logs verified while audit is part-way; all done.
In each phase every scheduled job runs (maintain, archive logs/audit/results, retention,
reconcile --repair, audit checkpoint, audit verify, the storage report, every backfill's
dry run) and must change nothing any read returns, with the documented refusals (log
archival waits until the log migration is verified), then ``db upgrade`` must apply
the contract steps whose backfill is done and refuse the first whose is not
(BackfillIncomplete), leaving its legacy table as it was. At the end
every line, record, context, result and execution reads back exactly once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from execstore.archival import reconcile
from execstore.audit import archive_audit, backfill_audit, checkpoint_organizations, verify_audit
from execstore.cli import app
from execstore.cli.maintain import MaintenanceOptions, run_steps
from execstore.config import load_settings
from execstore.errors import BackfillIncomplete, NotFound
from execstore.logs import archive_logs
from execstore.logs.backfill import COUNTS, _Run, backfill_logs
from execstore.metadata import backfill_metadata
from execstore.metadata.check import check_metadata
from execstore.migrations.runner import current_revision, head_revision, migrate
from execstore.operations import BatchReport
from execstore.rag import backfill_rag
from execstore.report.live import live_report
from execstore.results import backfill_results, count_remaining
from execstore.store import ExecStore

from .legacy_world import LAST_EXPAND, clock, expected

LEGACY_TABLES = (
    "execution_metadata_legacy",
    "execution_rag_rules_legacy",
    "execution_log",
    "phi_audit_log_legacy",
    "execution_screenshots_legacy",
)


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    logs_busy: bool
    """Log archival must wait (the log migration started and is not verified)."""
    upgrade: tuple[type[Exception], str, str] | None
    """What ``db upgrade`` raises and the revision it leaves (None: it reaches head)."""


async def legacy_counts(store: Any) -> dict[str, Any]:
    """Rows of every legacy table still there, and jobs still holding a legacy result."""
    found: dict[str, Any] = {}
    async with store.engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        for table in LEGACY_TABLES:
            if table in names:
                found[table] = await conn.scalar(sa.text(f"SELECT count(*) FROM {table}"))
    found["legacy results"] = await count_remaining(store.sessions)
    return found


async def reads(store: Any, rag_mode: str) -> dict[str, Any]:
    """What every read of the organization returns now (logs, RAG, metadata, results, audit)."""
    want = expected()
    seen: dict[str, Any] = {}
    async with store.unit(want.org, rag_mode=rag_mode) as uow:
        for kind, job in want.jobs.items():
            lines = (await uow.logs.for_job(job, limit=200)).items
            try:
                view: Any = (await uow.metadata.get(job)).model_dump()
            except NotFound:
                view = None
            detail = await uow.results.detail(job) if await uow.results.find(job) else None
            seen[kind] = (
                [(e.message, e.timestamp, e.level) for e in lines],
                await uow.rag.find(job),
                view,
                None if detail is None else detail.output,
                [s.url for s in await uow.results.screenshots(job)],
            )
        page = await uow.audit.query(limit=500)
        seen["audit"] = [(r.seq, r.id, r.resource_id, r.created_at) for r in page.items]
    return seen


Job = Callable[[Any, Phase], Awaitable[None]]


async def _maintain(store: Any, phase: Phase) -> None:
    steps = await run_steps(store, MaintenanceOptions())
    assert [s.status for s in steps if s.status == "failed"] == [], steps


async def _archive_logs(store: Any, phase: Phase) -> None:
    report = await archive_logs(
        store.engine, store.sessions, store.archives, hot_days=30, clock=store.clock
    )
    assert report.details["waiting_for_backfill"] is phase.logs_busy, phase.name
    assert not report.needs_attention
    if phase.logs_busy:
        moved = (report.counts["lines_archived"], report.details["partitions_detached"])
        assert moved == (0, [])


async def _archive_audit(store: Any, phase: Phase) -> None:
    await archive_audit(store.sessions, store.archives, hot_days=90, clock=store.clock)


async def _archive_results(store: Any, phase: Phase) -> None:
    report = await backfill_results(store.sessions, store.archives, clock=store.clock)
    assert report.set_aside == []


async def _retention(store: Any, phase: Phase) -> None:
    logs = await store.apply_retention("logs", days=365)
    audit = await store.apply_retention("audit", days=2192)
    assert (logs.counts["archives"], logs.set_aside) == (0, [])  # nothing is a year old
    assert (audit.counts["archives"], audit.counts["records"], audit.set_aside) == (0, 0, [])


async def _reconcile(store: Any, phase: Phase) -> None:
    for report in await reconcile(
        store.sessions,
        store.archives,
        store.archive_kinds,
        repair=True,
        verify=True,
        clock=store.clock,
    ):
        found = (report.details["lost"], report.details["corrupt"], report.details["orphans"])
        assert found == ([], [], []), report
        assert not report.needs_attention, report


async def _checkpoint(store: Any, phase: Phase) -> None:
    await checkpoint_organizations(store.sessions, store.archives, clock=store.clock)


async def _verify(store: Any, phase: Phase) -> None:
    report = await verify_audit(store.sessions, store.archives)
    assert not report.needs_attention, report.set_aside


async def _storage_report(store: Any, phase: Phase) -> None:
    report = await live_report(store)
    assert report["revision"] == store.revision
    assert json.dumps(report, default=str)


async def _dry_runs(store: Any, phase: Phase) -> None:
    before = await legacy_counts(store)
    await backfill_metadata(store.sessions, dry_run=True)
    await backfill_rag(store.sessions, dry_run=True, clock=store.clock)
    await backfill_logs(store.engine, store.sessions, dry_run=True, clock=store.clock)
    await backfill_audit(store.sessions, store.archives, dry_run=True, clock=store.clock)
    await backfill_results(store.sessions, store.archives, dry_run=True, clock=store.clock)
    assert await legacy_counts(store) == before


OPERATOR_JOBS: dict[str, Job] = {
    "maintain": _maintain,
    "archive logs": _archive_logs,
    "archive audit": _archive_audit,
    "backfill results": _archive_results,
    "retention run": _retention,
    "archive reconcile --repair --verify": _reconcile,
    "audit checkpoint": _checkpoint,
    "audit verify": _verify,
    "storage-report": _storage_report,
    "backfill ... --dry-run": _dry_runs,
}


async def _copy_one_batch(store: Any) -> None:
    """The log migration started and copied one batch (a run stopped there)."""
    report = BatchReport.start("backfill logs", *COUNTS)
    run = _Run(store.engine, store.sessions, report, 5, None, store.clock)
    await run.start()
    assert await run.copy_batch() == 5


async def _swap_only(store: Any) -> None:
    """Swapped, not verified yet (a run stopped between the swap and the verification)."""
    report = BatchReport.start("backfill logs", *COUNTS)
    run = _Run(store.engine, store.sessions, report, 100, None, store.clock)
    await run.swap(30)
    assert report.details["swapped"]


TAMPER = "UPDATE execution_log_partitioned SET level = 40 WHERE message = 'upper line 1'"
UNTAMPER = "UPDATE execution_log_partitioned SET level = 20 WHERE message = 'upper line 1'"


async def _tamper(store: Any, statement: str) -> None:
    async with store.engine.begin() as conn:
        assert (await conn.execute(sa.text(statement))).rowcount == 1


async def _enter(store: Any, name: str) -> None:
    """Move the migrations into the phase ``name`` (each step as an operator would)."""
    if name == "part-way":
        await backfill_results(store.sessions, store.archives, limit=1, clock=store.clock)
        assert (await backfill_metadata(store.sessions, limit=2)).counts["moved"] == 2
        assert (await backfill_rag(store.sessions, limit=1, clock=store.clock)).counts["moved"] == 1
        audit = await backfill_audit(store.sessions, store.archives, limit=2, clock=store.clock)
        assert audit.counts["moved"] == 2
        await _copy_one_batch(store)
        checked = await check_metadata(store.sessions, clock=store.clock)
        assert (checked.needs_attention, checked.details["complete"]) == (True, False)
    elif name == "metadata checked, logs copied":
        await backfill_metadata(store.sessions)
        checked = await check_metadata(store.sessions, clock=store.clock)
        assert (checked.needs_attention, checked.details["complete"]) == (False, True)
        copied = await backfill_logs(store.engine, store.sessions, swap=False, clock=store.clock)
        assert (copied.details["phase"], copied.details["complete"]) == ("copying", False)
    elif name == "rag verified, logs swapped":
        assert (await backfill_rag(store.sessions, clock=store.clock)).details["complete"]
        await _swap_only(store)
    elif name == "logs failed verification":
        await _tamper(store, TAMPER)
        failed = await backfill_logs(store.engine, store.sessions, clock=store.clock)
        assert (failed.details["phase"], [a.key for a in failed.set_aside]) == (
            "swapped",
            [f"job {expected().jobs['upper']}"],
        )
    elif name == "logs verified, audit part-way":
        await _tamper(store, UNTAMPER)
        verified = await backfill_logs(store.engine, store.sessions, clock=store.clock)
        assert verified.details["verified"], verified.set_aside
        assert verified.details["complete"]
        audit = await backfill_audit(store.sessions, store.archives, limit=2, clock=store.clock)
        assert (audit.counts["moved"], audit.details["complete"]) == (2, False)
    elif name == "everything moved":
        assert (await backfill_audit(store.sessions, store.archives, clock=store.clock)).details[
            "complete"
        ]
        await backfill_results(store.sessions, store.archives, clock=store.clock)


def _not_recorded(backfill: str) -> str:
    return f"the {backfill} backfill has not recorded its completion"


PHASES = [
    Phase("nothing moved", False, (BackfillIncomplete, _not_recorded("metadata"), LAST_EXPAND)),
    Phase("part-way", True, (BackfillIncomplete, _not_recorded("metadata"), LAST_EXPAND)),
    Phase(
        "metadata checked, logs copied",
        True,
        (BackfillIncomplete, _not_recorded("rag"), "contract_execution_metadata"),
    ),
    Phase(
        "rag verified, logs swapped",
        True,
        (BackfillIncomplete, _not_recorded("logs"), "contract_rag_rules"),
    ),
    Phase(
        "logs failed verification",
        True,
        (BackfillIncomplete, _not_recorded("logs"), "contract_rag_rules"),
    ),
    Phase(
        "logs verified, audit part-way",
        False,
        (BackfillIncomplete, _not_recorded("audit"), "contract_execution_log"),
    ),
    Phase("everything moved", False, None),
    Phase("contracted", False, None),
]


CLI_PHASES = ("part-way", "everything moved", "contracted")


CLI_PHASES = ("part-way", "everything moved", "contracted")


@asynccontextmanager
async def opened(url: str, blobs: Path) -> Any:
    revision = await current_revision(url)
    mode = (
        "dual_write_read_legacy"
        if revision in (LAST_EXPAND, "contract_execution_metadata")
        else "normalized"
    )
    settings = load_settings(
        database_url=url, blob_url=f"file:{blobs}", rag_mode=mode, rag_shadow_sample_rate=0.0
    )
    async with ExecStore.open(settings, clock=clock()) as store:
        yield store, mode


async def cli(*argv: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, app, list(argv), terminal_width=200)


async def test_every_operator_job_in_every_phase_then_the_contract(
    legacy_url: str, tmp_path: Path
) -> None:
    blobs = tmp_path / "blobs"
    common = ["--url", legacy_url, "--blob-url", f"file:{blobs}"]
    for phase in PHASES:
        async with opened(legacy_url, blobs) as (store, mode):
            await _enter(store, phase.name)
            before = await reads(store, mode)
            for job in OPERATOR_JOBS.values():
                await job(store, phase)
            assert await reads(store, mode) == before, phase.name
            if phase.name in CLI_PHASES:  # the exit codes a scheduler sees
                held = await cli("archive", "logs", "--json", *common)
                assert held.exit_code == 0, held.output
                [logs] = json.loads(held.stdout.strip().splitlines()[-1])["reports"]
                assert logs["details"]["waiting_for_backfill"] is phase.logs_busy
                check = await cli("backfill", "audit", "--dry-run", "--json", *common)
                assert check.exit_code == 0, check.output
                [audit] = json.loads(check.stdout.strip().splitlines()[-1])["reports"]
                assert audit["details"]["complete"] is (phase.upgrade is None)
            counts = await legacy_counts(store)
        if phase.name == "part-way":  # as a scheduler sees it: exit 1, one line on what to run
            refused = await cli("db", "upgrade", "--url", legacy_url)
            assert refused.exit_code == 1, refused.output
            assert "backfill metadata" in refused.output
            assert "Traceback" not in refused.output
        if phase.upgrade is None:
            await migrate(legacy_url)
            assert await current_revision(legacy_url) == head_revision()
            continue
        error, message, left_at = phase.upgrade
        with pytest.raises(error, match=message):
            await migrate(legacy_url)
        assert await current_revision(legacy_url) == left_at, phase.name
        async with opened(legacy_url, blobs) as (store, _):
            after = await legacy_counts(store)
        # Contract steps that ran dropped their (finished) tables; the rest are untouched.
        assert {t: n for t, n in counts.items() if t in after} == after, phase.name
    want = expected()
    async with opened(legacy_url, blobs) as (store, mode):
        assert mode == "normalized"
        assert await legacy_counts(store) == {
            "execution_screenshots_legacy": 0,
            "legacy results": 0,
        }
        got = await reads(store, mode)
        assert not (await verify_audit(store.sessions, store.archives)).needs_attention
    for kind, job in want.jobs.items():
        lines, rag, view, output, shots = got[kind]
        assert [m for m, _, _ in lines] == want.messages[job], kind
        assert rag == want.rag[job], kind
        assert view is not None, kind
        assert view["status"].name == "COMPLETED", kind
        assert output == want.results[job], kind
        assert shots == ([] if output is None else [output["screenshots"][0]["url"]]), kind
    assert [resource for _, _, resource, _ in got["audit"]] == want.audit_resources
    assert [seq for seq, _, _, _ in got["audit"]] == list(range(1, len(want.audit_resources) + 1))
