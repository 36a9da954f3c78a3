"""Migrations: the same contract on PostgreSQL and SQLite."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from execstore.config import load_settings
from execstore.db import create_engine
from execstore.errors import DowngradeRefused, ExecstoreError, MigrationRequired
from execstore.migrations.runner import (
    compatible_revisions,
    current_revision,
    downgrade,
    head_revision,
    migrate,
    schema_diff,
)
from execstore.schema import legacy
from execstore.textlimits import TRUNCATION_MARKER
from support.migration_db import Templates, models_schema
from support.schema_snapshot import differences

REVISIONS = [
    "legacy_baseline",
    "add_varchar_limits",
    "normalize_rag_rules",
    "partition_execution_logs",
    "add_archival_tables",
    "slim_execution_metadata",
    "compact_phi_audit",
    "contract_execution_metadata",
    "contract_rag_rules",
    "contract_execution_log",
    "contract_phi_audit",
]


async def _rows(url: str, sql: str) -> list[sa.Row]:
    engine = create_engine(load_settings(database_url=url))
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.text(sql))).all())
    finally:
        await engine.dispose()


def test_revisions_are_the_plan_in_order() -> None:
    from alembic.script import ScriptDirectory

    from execstore.migrations.runner import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    chain = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert chain == REVISIONS
    assert head_revision() == REVISIONS[-1]


async def test_upgrade_to_head_matches_the_models(fresh_db_url: str) -> None:
    await migrate(fresh_db_url)
    assert await current_revision(fresh_db_url) == head_revision()
    assert await schema_diff(fresh_db_url) == []


async def test_head_is_what_the_models_describe_in_the_catalog(
    templates: Templates, backend: str
) -> None:
    """Column by column (order, type, nullability, default, identity), every constraint,
    index, trigger, function, statistics object and the partition key, compared in the
    catalogs of a migrated database and one built from the models: what autogenerate
    does not compare (column order, triggers, expression and partial indexes, index
    methods and options) included."""
    head = dict(templates.snapshots[head_revision()])
    partitions = head.pop("partitions")
    async with templates.scratch() as url:
        models = await models_schema(url)
    models.pop("partitions")
    assert differences(head, models) == []
    if backend == "postgres":  # this month and the next three, no DEFAULT partition
        month = dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        expected = {}
        for _ in range(4):
            after = (month + dt.timedelta(days=32)).replace(day=1)
            expected[f"execution_log_partitioned_p{month:%Y_%m}"] = (
                f"FOR VALUES FROM ('{month:%Y-%m-%d} 00:00:00+00') "
                f"TO ('{after:%Y-%m-%d} 00:00:00+00')"
            )
            month = after
        assert partitions == expected


async def test_downgrade_refuses_to_drop_rows_only_head_can_hold(
    fresh_db_url: str, tmp_path
) -> None:
    from execstore.store import ExecStore

    await migrate(fresh_db_url)
    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path}")
    org = uuid.uuid4()
    async with ExecStore.open(settings) as store, store.unit(org) as uow:
        from execstore.schema.models import ExecutionMetadata, Organization

        uow.session.add(Organization(id=org, name="o"))
        wf = await uow.reference.add_workflow("wf")
        job = await uow.jobs.create(workflow_id=wf.id)
        uow.session.add(
            ExecutionMetadata(
                job_id=job.id,
                organization_id=org,
                workflow_id=wf.id,
                status=2,
                created_at=job.created_at,
            )
        )
    with pytest.raises(DowngradeRefused, match="execution_metadata"):
        await downgrade(fresh_db_url, "add_archival_tables")
    assert await current_revision(fresh_db_url) == head_revision()


async def test_store_refuses_a_database_behind_head(fresh_db_url: str, tmp_path) -> None:
    from execstore.store import ExecStore

    await migrate(fresh_db_url, "add_varchar_limits")
    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path}")
    with pytest.raises(MigrationRequired, match="execstore db upgrade"):
        async with ExecStore.open(settings):
            pass


async def _backfill_metadata(url: str, blobs: Path) -> None:
    from execstore.metadata.backfill import backfill_metadata
    from execstore.metadata.check import check_metadata
    from execstore.store import ExecStore

    settings = load_settings(database_url=url, blob_url=f"file:{blobs}")
    async with ExecStore.open(settings) as store:
        moved = await backfill_metadata(store.sessions)
        assert (moved.counts["moved"], moved.set_aside) == (1, [])
        checked = await check_metadata(store.sessions)
        assert (checked.needs_attention, checked.details["complete"]) == (False, True)


async def _backfill_logs(url: str, blobs: Path) -> None:
    from execstore.logs.backfill import backfill_logs
    from execstore.store import ExecStore

    settings = load_settings(database_url=url, blob_url=f"file:{blobs}")
    async with ExecStore.open(settings) as store:
        moved = await backfill_logs(store.engine, store.sessions)
    assert (moved.counts["moved"], moved.details["verified"], moved.details["complete"]) == (
        5,
        True,
        True,
    )


async def _backfill_rag(url: str, blobs: Path) -> None:
    from execstore.rag import backfill_rag
    from execstore.store import ExecStore

    settings = load_settings(database_url=url, blob_url=f"file:{blobs}")
    async with ExecStore.open(settings) as store:
        assert (await backfill_rag(store.sessions)).details["complete"]


async def _backfill_audit(url: str, blobs: Path) -> None:
    from execstore.audit import backfill_audit
    from execstore.store import ExecStore

    settings = load_settings(database_url=url, blob_url=f"file:{blobs}")
    async with ExecStore.open(settings) as store:
        report = await backfill_audit(store.sessions, store.archives)
    assert (report.set_aside, report.details["complete"]) == ([], True)


def _legacy_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        return uuid.UUID(hashlib.md5(text.encode()).hexdigest())


async def test_legacy_database_with_rows_upgrades_keeping_every_row(
    fresh_db_url: str, backend: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    await migrate(fresh_db_url, "legacy_baseline")
    org = "org-from-before-uuids"  # not a uuid: maps to md5(id)::uuid on PostgreSQL
    wf, job, job2, account = (str(uuid.uuid4()) for _ in range(4))
    nul = "\x00" if backend == "sqlite" else ""  # PostgreSQL text cannot hold NUL at all
    long_error = "boom" + nul + "é" * 4000
    engine = create_engine(load_settings(database_url=fresh_db_url), foreign_keys=False)
    async with engine.begin() as conn:
        await conn.execute(sa.insert(legacy.organizations), [{"id": org, "name": "Acme"}])
        await conn.execute(
            sa.insert(legacy.workflows), [{"id": wf, "organization_id": org, "name": "Claims"}]
        )
        await conn.execute(
            sa.insert(legacy.credentials),
            [{"id": account.upper(), "organization_id": org, "name": "availity"}],
        )
        await conn.execute(
            sa.insert(legacy.jobs),
            [
                {
                    "id": job,
                    "organization_id": org,
                    "workflow_id": wf,
                    "credential_ids": [account.upper()],
                    "status": "failed",
                    "error_message": long_error,
                    "result": {"success": False, "screenshots": [{"url": "u"}]},
                },
                {
                    "id": job2,
                    "organization_id": org,
                    "workflow_id": wf,
                    "credential_ids": [],
                    "status": "completed",
                    "error_message": "fine" + nul,
                    "result": None,
                },
            ],
        )
        await conn.execute(
            sa.insert(legacy.schedule_executions),
            [
                {
                    "id": str(uuid.uuid4()),
                    "organization_id": org,
                    "status": "x",
                    "error_stack": "s" * 25000,
                }
            ],
        )
        await conn.execute(
            sa.insert(legacy.healing_attempts),
            [{"id": str(uuid.uuid4()), "job_id": job, "step_index": 1, "reasoning": "r" * 2001}],
        )
        await conn.execute(
            sa.insert(legacy.healing_suggestions),
            [
                {
                    "id": str(uuid.uuid4()),
                    "organization_id": org,
                    "error_pattern": "p" * 1000,
                    "dismiss_reason": "d" * 501,
                }
            ],
        )
        await conn.execute(
            sa.insert(legacy.execution_log),
            [
                {
                    "id": str(uuid.uuid4()),
                    "job_id": job,
                    "step_index": i,
                    "level": "info",
                    "message": "m",
                }
                for i in range(5)
            ],
        )
        await conn.execute(
            sa.insert(legacy.execution_screenshots),
            [{"id": str(uuid.uuid4()), "job_id": job, "step_index": 0, "url": "https://x/y.png"}],
        )
        await conn.execute(
            sa.insert(legacy.execution_rag_rules),
            [
                {
                    "id": str(uuid.uuid4()),
                    "job_id": job,
                    "organization_id": org,
                    "payers": [{"payerName": "Aetna", "payerId": "60054", "scenario": "s"}],
                    "modifiers": [],
                    "rules": [{"ruleId": "R1", "ruleType": "t", "condition": "c", "action": "a"}],
                    "rag_retrieval_time_ms": 12,
                    "total_rules_retrieved": 1,
                }
            ],
        )
        await conn.execute(
            sa.insert(legacy.execution_metadata),
            [
                {
                    "id": str(uuid.uuid4()),
                    "job_id": job,
                    "organization_id": org,
                    "workflow_id": wf,
                    "workflow_name": "Claims",
                    "status": "failed",
                    "created_at": dt.datetime(2026, 1, 2, 3, 4, 5),
                    "all_account_ids": [account],
                    "all_account_names": ["availity"],
                    "account_count": 1,
                }
            ],
        )
        await conn.execute(
            sa.insert(legacy.phi_audit_log),
            [
                {
                    "id": str(uuid.uuid4()),
                    "organization_id": org,
                    "action": "read",
                    "resource_type": "claim",
                }
            ],
        )
    await engine.dispose()

    # Every expand revision; the contract revisions wait for the capabilities' backfills.
    last_expand = compatible_revisions()[-1]
    with caplog.at_level("WARNING", logger="execstore.migrations"):
        await migrate(fresh_db_url, last_expand)
    reported = {r.getMessage() for r in caplog.records if r.name == "execstore.migrations"}
    fitted_jobs = 2 if backend == "sqlite" else 1  # SQLite also had "fine\x00" to clean
    assert f"jobs.error_message: {fitted_jobs} row(s) fitted to 2000 characters" in reported
    assert "healing_suggestions.error_pattern: 0 row(s)" not in " ".join(reported)
    assert len(reported) == 4  # error_message, error_stack, reasoning, dismiss_reason

    # And back: before any backfill, the legacy rows survive a downgrade to the baseline.
    await downgrade(fresh_db_url, "legacy_baseline")
    for table in (
        "execution_log",
        "execution_screenshots",
        "execution_rag_rules",
        "execution_metadata",
        "phi_audit_log",
    ):
        assert (await _rows(fresh_db_url, f"SELECT count(*) FROM {table}"))[0][0] >= 1

    # Forward again; the audit contract drops its legacy table only once it is backfilled.
    # Forward again; each contract step drops its legacy table only once its backfill has
    # moved every row (cuid ids mapped on the way), and changes nothing before that.
    await migrate(fresh_db_url, last_expand)
    for contract, name, backfill in (
        ("contract_execution_metadata", "metadata", _backfill_metadata),
        ("contract_rag_rules", "rag", _backfill_rag),
        ("contract_execution_log", "logs", _backfill_logs),
        ("contract_phi_audit", "audit", _backfill_audit),
    ):
        with pytest.raises(ExecstoreError, match=f"backfill {name}"):
            await migrate(fresh_db_url, contract)
        await backfill(fresh_db_url, tmp_path)
        await migrate(fresh_db_url, contract)
        assert await current_revision(fresh_db_url) == contract
    await migrate(fresh_db_url)
    assert await schema_diff(fresh_db_url) == []

    counts = {
        table: (await _rows(fresh_db_url, f"SELECT count(*) FROM {table}"))[0][0]
        for table in (
            "organizations",
            "workflows",
            "jobs",
            "schedule_executions",
            "healing_attempts",
            "healing_suggestions",
            "execution_log_partitioned",
            "execution_screenshots_legacy",
            "execution_rag_context",
            "execution_metadata",
            "phi_audit_log",
        )
    }
    assert counts == {
        "organizations": 1,
        "workflows": 1,
        "jobs": 2,
        "schedule_executions": 1,
        "healing_attempts": 1,
        "healing_suggestions": 1,
        "execution_log_partitioned": 5,
        "execution_screenshots_legacy": 1,
        "execution_rag_context": 1,
        "execution_metadata": 1,
        "phi_audit_log": 1,
    }
    jobs = dict(await _rows(fresh_db_url, "SELECT status, error_message FROM jobs ORDER BY status"))
    assert len(jobs["failed"]) == 2000
    assert jobs["failed"].startswith("boomé")
    assert jobs["failed"].endswith(TRUNCATION_MARKER)
    assert jobs["completed"] == "fine"
    lengths = await _rows(
        fresh_db_url,
        "SELECT length(error_stack) FROM schedule_executions UNION ALL "
        "SELECT length(reasoning) FROM healing_attempts UNION ALL "
        "SELECT length(error_pattern) FROM healing_suggestions UNION ALL "
        "SELECT length(dismiss_reason) FROM healing_suggestions",
    )
    assert [r[0] for r in lengths] == [10000, 2000, 1000, 500]

    from execstore.store import ExecStore

    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path}")
    async with ExecStore.open(settings) as store, store.unit(_legacy_id(org)) as uow:
        got = await uow.jobs.get(uuid.UUID(job))
        assert got.organization_id == _legacy_id(org)
        assert got.workflow_id == uuid.UUID(wf)
        assert got.result == {"success": False, "screenshots": [{"url": "u"}]}
        rag = await uow.rag.get(uuid.UUID(job))
        assert rag is not None
        assert rag.payers[0].payer_id == "60054"
        lines = await uow.logs.tail(uuid.UUID(job))
        assert sorted(line.step_index for line in lines) == [0, 1, 2, 3, 4]
        view = await uow.metadata.get(uuid.UUID(job))
        assert (view.workflow_name, view.status.name) == ("Claims", "FAILED")


async def test_a_refused_downgrade_changes_nothing(fresh_db_url: str, tmp_path) -> None:
    """Refused several revisions down: the database stays at head and stays usable."""
    from execstore.store import ExecStore

    await migrate(fresh_db_url)
    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path}")
    org = uuid.uuid4()
    async with ExecStore.open(settings) as store, store.unit(org) as uow:
        await uow.reference.add_organization("o")
        wf = await uow.reference.add_workflow("wf")
        job = await uow.jobs.create(workflow_id=wf.id)
        await uow.results.save(job.id, {"success": True})
    for target in ("base", "legacy_baseline", "normalize_rag_rules"):
        with pytest.raises(DowngradeRefused, match="job_result_archives"):
            await downgrade(fresh_db_url, target)
        assert await current_revision(fresh_db_url) == head_revision()
    assert await schema_diff(fresh_db_url) == []
    async with ExecStore.open(settings) as store, store.unit(org) as uow:
        assert (await uow.results.find(job.id)) is not None


async def test_store_runs_on_any_compatible_revision(fresh_db_url: str, tmp_path) -> None:
    from execstore.migrations.runner import compatible_revisions
    from execstore.store import ExecStore

    allowed = compatible_revisions()
    assert allowed[0] == head_revision()
    assert "slim_execution_metadata" not in allowed or allowed[-1] == "slim_execution_metadata"
    await migrate(fresh_db_url, allowed[-1])
    settings = load_settings(database_url=fresh_db_url, blob_url=f"file:{tmp_path}")
    async with ExecStore.open(settings) as store:
        assert store.revision == allowed[-1]
    below = REVISIONS[REVISIONS.index(allowed[-1]) - 1]
    await downgrade(fresh_db_url, below)
    with pytest.raises(MigrationRequired, match=allowed[-1]):
        async with ExecStore.open(settings):
            pass
