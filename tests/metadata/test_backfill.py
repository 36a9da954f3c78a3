"""Backfill, check and contract on a legacy database with realistic rows, on both backends."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.config import load_settings
from execstore.errors import BackfillIncomplete
from execstore.ids import legacy_uuid
from execstore.metadata.backfill import backfill_metadata, count_remaining
from execstore.metadata.check import check_metadata
from execstore.migrations.runner import current_revision, migrate, schema_diff
from execstore.schema import models as m
from execstore.schema.enums import ExecutionStatus
from execstore.textlimits import TRUNCATION_MARKER

from .conftest import LAST_EXPAND
from .legacy_data import build_legacy_database


async def _legacy_sql(store: Any, sql: str, **params: Any) -> None:
    async with store.sessions() as session, session.begin():
        await session.execute(sa.text(sql), params)


async def test_backfill_moves_rows_sets_aside_the_rest_and_resumes(legacy_store: Any) -> None:
    store, world, _ = legacy_store
    total = await count_remaining(store.sessions)
    assert total == 36  # the orphan's job is gone: it never moves, it goes with the table
    seen: list[tuple[int, int | None]] = []
    report = await backfill_metadata(
        store.sessions, batch_size=7, on_progress=lambda done, total: seen.append((done, total))
    )
    assert report.counts["examined"] == 37
    assert report.counts["moved"] == 35
    assert report.counts["remaining"] == 1  # the unknown status
    assert seen == [(7, 36), (14, 36), (21, 36), (28, 36), (35, 36), (37, 36)]
    reasons = {aside.key: aside.reason for aside in report.set_aside}
    assert reasons == {
        world.metadata_ids["unknown_status"]: "unknown status 'paused-by-ops'",
        world.metadata_ids["orphan"]: f"job {world.job_uuid('orphan')} no longer exists",
    }
    # Set-aside rows are left exactly as they were, and a re-run tries only them again.
    async with store.sessions() as session:
        legacy = m.execution_metadata_legacy
        assert await session.scalar(sa.select(sa.func.count()).select_from(legacy)) == 37
    again = await backfill_metadata(store.sessions, batch_size=7)
    assert (again.counts["examined"], again.counts["moved"], len(again.set_aside)) == (2, 0, 2)
    assert again.details["complete"] is False  # the check records it, not the move

    # Ids of every legacy form map to the jobs' uuids; names now come from joins.
    async with store.unit(world.org_uuid) as uow:
        cuid_view = await uow.metadata.get(world.job_uuid("cuid_job"))
        running = await uow.metadata.get(world.job_uuid("running"))
        failed = await uow.metadata.get(world.job_uuid("long_error"))
        page = await uow.metadata.list(limit=200)
    assert cuid_view.workflow_id == legacy_uuid(world.wf_renamed)
    assert cuid_view.workflow_name == "Eligibility v2"
    assert cuid_view.client_id == legacy_uuid(world.client)
    assert (cuid_view.insuree_name, cuid_view.insuree_id) == ("Grace Hopper", "MBR-1906")
    assert cuid_view.all_account_names == ["availity-main", "payer-portal-2"]
    assert cuid_view.created_at == dt.datetime(2025, 11, 3, 8, 7, tzinfo=dt.UTC)
    assert (running.status, running.completed_steps) == (ExecutionStatus.RUNNING, 6)
    assert running.primary_account_name == "legacy-portal"
    assert failed.error_message is not None
    assert len(failed.error_message) == 500
    assert failed.error_message.endswith(TRUNCATION_MARKER)
    assert len(page.items) == 35


async def test_dry_run_reports_without_writing(legacy_store: Any) -> None:
    store, _, _ = legacy_store
    report = await backfill_metadata(store.sessions, dry_run=True)
    assert (report.counts["moved"], len(report.set_aside)) == (35, 2)
    assert await count_remaining(store.sessions) == 36


async def test_check_explains_legitimate_differences_and_gates_the_contract(
    legacy_store: Any,
) -> None:
    store, world, url = legacy_store
    await backfill_metadata(store.sessions, batch_size=10)
    # The running job goes on after the move: a legitimate difference.
    async with store.unit(world.org_uuid) as uow:
        await uow.metadata.complete(world.job_uuid("running"))

    report = await check_metadata(store.sessions, batch_size=9)
    assert report.counts["legacy_rows"] == 37
    assert report.counts["compared"] == 35
    assert report.details["orphaned"] == [world.metadata_ids["orphan"]]
    assert report.counts["explained_renamed"] == 34  # every row copied "Eligibility v1"
    assert report.counts["explained_fitted"] == 1
    assert report.counts["explained_recomputed"] == 1
    assert report.counts["explained_progressed"] >= 4  # status, steps, completed_at, ...
    kinds = {(x.job_id, x.field): x.kind for x in report.details["examples"]}
    assert kinds[(str(world.job_uuid("cuid_job")), "workflow_name")] == "renamed"
    assert [(x.job_id, x.field) for x in report.details["unexplained"]] == [
        (str(world.job_uuid("stale_accounts")), "all_account_ids")
    ]
    # Set aside, with the rest of the check intact: the unmigrated row, the difference.
    assert (report.counts["unmigrated"], report.counts["unexplained"]) == (1, 1)
    reasons = {a.key: a.reason for a in report.set_aside}
    assert set(reasons) == {
        world.metadata_ids["unknown_status"],
        world.metadata_ids["stale_accounts"],
    }
    assert reasons[world.metadata_ids["unknown_status"]] == "unknown status 'paused-by-ops'"
    stale = reasons[world.metadata_ids["stale_accounts"]]
    assert stale.startswith("unexplained difference in all_account_ids: legacy [")
    assert report.needs_attention
    assert (report.details["recorded"], report.details["complete"]) == (False, False)

    with pytest.raises(BackfillIncomplete, match="metadata backfill has not recorded"):
        await migrate(url)
    assert await current_revision(url) == LAST_EXPAND

    # The operator fixes the data: maps the unknown status, corrects the stale copy.
    await _legacy_sql(
        store,
        "UPDATE execution_metadata_legacy SET status = 'failed' WHERE id = :id",
        id=world.metadata_ids["unknown_status"],
    )
    moved = await backfill_metadata(store.sessions)
    assert moved.counts["moved"] == 1
    legacy = m.execution_metadata_legacy
    async with store.sessions() as session, session.begin():
        await session.execute(
            sa.update(legacy)
            .where(legacy.c.id == world.metadata_ids["stale_accounts"])
            .values(
                all_account_ids=world.accounts[:2],
                all_account_names=["availity-main", "payer-portal-2"],
                account_count=2,
            )
        )
    clean = await check_metadata(store.sessions)
    assert not clean.needs_attention, clean.set_aside
    assert clean.details["orphaned"] == [world.metadata_ids["orphan"]]
    assert clean.details["complete"]

    # A legacy row written after the clean check: the contract refuses again.
    row = await _legacy_row(store, world.metadata_ids["odd_percent"])
    async with store.sessions() as session, session.begin():
        await session.execute(sa.insert(legacy).values(row | {"id": "cklate", "job_id": "late"}))
    with pytest.raises(BackfillIncomplete, match="changed since the metadata backfill completed"):
        await migrate(url)
    async with store.sessions() as session, session.begin():
        await session.execute(sa.delete(legacy).where(legacy.c.id == "cklate"))

    assert not (await check_metadata(store.sessions)).needs_attention
    await migrate(url)
    assert await schema_diff(url) == []
    async with store.sessions() as session:
        assert not await session.run_sync(
            lambda s: sa.inspect(s.connection()).has_table("execution_metadata_legacy")
        )
    # With the legacy table gone, the jobs keep working and the commands say so.
    async with store.unit(world.org_uuid) as uow:
        view = await uow.metadata.get(world.job_uuid("unknown_status"))
    assert view.status is ExecutionStatus.FAILED
    gone = await backfill_metadata(store.sessions)
    assert (gone.details["legacy_table"], gone.details["complete"]) == (False, True)
    checked = await check_metadata(store.sessions)
    assert (checked.details["legacy_table"], checked.counts["legacy_rows"]) == (False, 0)


async def test_contract_refuses_before_any_check_and_drops_an_empty_table(
    fresh_db_url: str,
) -> None:
    await migrate(fresh_db_url, "legacy_baseline")
    await build_legacy_database(fresh_db_url, ordinary=0)
    with pytest.raises(BackfillIncomplete, match="metadata backfill has not recorded"):
        await migrate(fresh_db_url)
    assert await current_revision(fresh_db_url) == LAST_EXPAND
    await _drop_legacy_rows(fresh_db_url)
    await migrate(fresh_db_url)
    assert await schema_diff(fresh_db_url) == []


async def _legacy_row(store: Any, legacy_id: str) -> dict[str, Any]:
    legacy = m.execution_metadata_legacy
    async with store.sessions() as session:
        found = await session.execute(sa.select(legacy).where(legacy.c.id == legacy_id))
        return dict(found.one()._mapping)


async def _drop_legacy_rows(url: str) -> None:
    from execstore.db import create_engine

    engine = create_engine(load_settings(database_url=url))
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text("DELETE FROM execution_metadata_legacy"))
    finally:
        await engine.dispose()
