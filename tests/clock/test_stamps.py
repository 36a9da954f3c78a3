"""Every timestamp execstore writes comes from the store's clock, never the wall clock.

One lifecycle through every repository and operator job, on a clock decades away from
the wall: each stamp a caller can see is the clock's, and afterwards no timestamp in any
table of this package's database is anywhere near the wall clock (a write that fell back
to a server default or read the time itself would be).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.audit import archive_audit, checkpoint_organizations
from execstore.blob import WRITTEN_AT_METADATA
from execstore.clock import ManualClock
from execstore.logs import NewLogEntry, archive_logs
from execstore.metadata import refresh_summaries
from execstore.metadata.state import read_state
from execstore.metadata.summaries import SUMMARY_STATE
from execstore.rag.types import millis
from execstore.results.format import result_archive_key
from execstore.schema import models as m
from execstore.schema.types import UtcTimestamp
from support.timeline import new_org

from .conftest import AHEAD, BEHIND, pinned

OUTPUT = {
    "success": True,
    "totalSteps": 2,
    "successfulSteps": 2,
    "failedSteps": 0,
    "steps": [{"index": 0, "ok": True}, {"index": 1, "ok": True}],
}
RAG = {
    "ragRetrievalTimeMs": 40,
    "totalRulesRetrieved": 1,
    "rules": [{"ruleId": "R-9", "ruleType": "billing", "condition": "c", "action": "a"}],
}
ACCESS = {"action": "view", "resource_type": "claim", "purpose": "payment"}


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


async def _stamp(store: Any, model: Any, column: str, **where: Any) -> dt.datetime:
    async with store.sessions() as session:
        stmt = sa.select(getattr(model, column)).filter_by(**where)
        return _aware((await session.execute(stmt)).scalars().one())


@pytest.mark.parametrize("direction", [AHEAD, BEHIND])
async def test_every_write_is_stamped_by_the_clock(open_store: Any, direction: str) -> None:
    start = pinned(
        direction,
        dt.datetime(2041, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC),
        dt.datetime(2011, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC),
    )
    clock = ManualClock(start)
    async with open_store(clock) as store:
        org, workflow = await new_org(store)
        assert await _stamp(store, m.Organization, "created_at", id=org) == start
        assert await _stamp(store, m.Workflow, "created_at", id=workflow) == start
        async with store.unit(org) as uow:
            receipt = await uow.audit.record(ACCESS)  # before the unit writes (SQLite)
            client = await uow.reference.add_client("Clinic")
            claim = await uow.reference.add_claim_submission(client_id=client.id)
            credential = await uow.reference.add_credential("portal account")
            job = await uow.jobs.create(workflow_id=workflow, credential_ids=[credential.id])
        assert receipt.created_at == start
        assert job.created_at == start
        for model, row in ((m.Client, client.id), (m.ClaimSubmission, claim.id)):
            assert await _stamp(store, model, "created_at", id=row) == start
        assert await _stamp(store, m.Credential, "created_at", id=credential.id) == start

        # The lifecycle: started now, completed 90 s later by the clock.
        async with store.unit(org) as uow:
            await uow.metadata.create(job.id)
            await uow.metadata.start(job.id)
        clock.advance(seconds=90)
        async with store.unit(org) as uow:
            await uow.logs.append(job.id, [NewLogEntry("no time of its own")])
            await uow.logs.set_retention(400)
            await uow.rag.save(job.id, RAG)
            await uow.results.save(job.id, OUTPUT)
            await uow.metadata.complete(job.id)
        done = start + dt.timedelta(seconds=90)
        async with store.unit(org) as uow:
            view = await uow.metadata.get(job.id)
            [line] = (await uow.logs.for_job(job.id)).items
            context = await uow.rag.get(job.id)
        assert (view.created_at, view.started_at, view.completed_at) == (start, start, done)
        assert view.duration_ms == 90_000
        assert line.timestamp == done
        assert context is not None
        assert context.retrieved_at == millis(done)
        assert await _stamp(store, m.ExecutionLogRetention, "updated_at", organization_id=org) == (
            done
        )
        assert await _stamp(store, m.JobResultArchive, "archived_at", job_id=job.id) == done
        key = result_archive_key(org, job.id, start, store.archives.codec)
        [info] = [i async for i in store.blobs.list(key)]
        assert info.metadata[WRITTEN_AT_METADATA] == done.isoformat()

        # Marked used a day later; archived and checkpointed once past the hot windows.
        clock.advance(days=1)
        async with store.unit(org) as uow:
            rule = await uow.rag.mark_rule_used(job.id, "R-9", step_index=1)
        assert rule.used_at == millis(clock.now())
        clock.advance(days=70)  # the month's partition ends before the hot window starts
        hot = store.settings.log_hot_days
        logs = await archive_logs(
            store.engine, store.sessions, store.archives, hot_days=hot, clock=clock
        )
        assert logs.counts["lines_archived"] >= 1
        assert await _stamp(store, m.ExecutionLogArchive, "archived_at", organization_id=org) == (
            clock.now()
        )
        await archive_audit(store.sessions, store.archives, hot_days=1, clock=clock)
        await checkpoint_organizations(store.sessions, store.archives, clock=clock)
        assert await _stamp(store, m.PhiAuditArchive, "archived_at", organization_id=org) == (
            clock.now()
        )
        if store.engine.dialect.name == "postgresql":
            async with store.sessions() as session, session.begin():
                await refresh_summaries(session, clock=clock)
            async with store.sessions() as session:
                state = await read_state(session, SUMMARY_STATE)
            assert state is not None
            assert state[0] == clock.now()
        await _no_stamp_near_the_wall(store)


async def _no_stamp_near_the_wall(store: Any) -> None:
    """No timestamp column of any table holds a value within a week of the wall clock."""
    wall = dt.datetime.now(dt.UTC)
    near: list[str] = []
    async with store.sessions() as session:
        for table in m.Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, UtcTimestamp)]
            for column in columns:
                stmt = sa.select(sa.func.count()).where(
                    column >= wall - dt.timedelta(days=7), column <= wall + dt.timedelta(days=7)
                )
                if await session.scalar(stmt):
                    near.append(f"{table.name}.{column.name}")
    assert near == [], "written from the wall clock, not the store's clock"
    assert len(m.Base.metadata.sorted_tables) > 20


async def test_the_scan_of_stamps_would_see_a_wall_clock_row(open_store: Any) -> None:
    """A row written with the database's own now() is found by the check above."""
    clock = ManualClock(dt.datetime(2042, 1, 1, tzinfo=dt.UTC))
    async with open_store(clock) as store:
        org, workflow = await new_org(store)
        async with store.sessions() as session, session.begin():
            # What a forgotten stamp would do: leave it to the server default.
            session.add(m.ScheduleExecution(organization_id=org, workflow_id=workflow, status="ok"))
        with pytest.raises(AssertionError, match="wall clock"):
            await _no_stamp_near_the_wall(store)
        async with store.sessions() as session, session.begin():
            await session.execute(
                sa.delete(m.ScheduleExecution).where(m.ScheduleExecution.organization_id == org)
            )
        await _no_stamp_near_the_wall(store)
