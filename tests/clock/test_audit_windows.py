"""Audit records, archival, retention and checkpoints run on the store's clock.

A record is stamped with the clock's time; archival moves it once it is older than the
hot window by the clock (not at exactly the window's age); retention deletes its segment
once it is older than the retention by the clock, never before six years; a checkpoint
falls due once the last claim is ``audit_checkpoint_hours`` old by the clock.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.audit import archive_audit, verify_audit
from execstore.clock import ManualClock
from execstore.config import AUDIT_RETENTION_FLOOR_DAYS
from execstore.operations import apply_retention
from execstore.schema.audit import PhiAuditArchive, PhiAuditCheckpoint
from support.timeline import new_org

from .conftest import DIRECTIONS, pinned

HOT_DAYS = 90
TICK = dt.timedelta(microseconds=1)
ACCESS = {"action": "view", "resource_type": "claim", "patient_ref": "MRN-0001"}


async def _count(store: Any, model: Any, org: uuid.UUID) -> int:
    async with store.sessions() as session:
        found = await session.scalar(
            sa.select(sa.func.count()).select_from(model).where(model.organization_id == org)
        )
    return int(found or 0)


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_archival_and_retention_of_records_follow_the_clock(
    open_store: Any, direction: str
) -> None:
    recorded = pinned(
        direction,
        dt.datetime(2043, 2, 10, 8, tzinfo=dt.UTC),
        dt.datetime(2013, 2, 10, 8, tzinfo=dt.UTC),
    )
    clock = ManualClock(recorded)
    async with open_store(clock) as store:
        org, _ = await new_org(store)
        async with store.unit(org) as uow:
            receipt = await uow.audit.record(ACCESS)
        assert receipt.created_at == recorded

        async def archive() -> Any:
            return await archive_audit(
                store.sessions, store.archives, hot_days=HOT_DAYS, organization_id=org, clock=clock
            )

        clock.set(recorded + dt.timedelta(days=HOT_DAYS))  # exactly the window's age: hot
        assert (await archive()).counts["records"] == 0
        clock.advance(TICK)
        moved = await archive()
        assert (moved.counts["segments"], moved.counts["records"], moved.set_aside) == (1, 1, [])
        async with store.unit(org) as uow:
            page = await uow.audit.query()
        assert [r.created_at for r in page.items] == [recorded]  # read from the archive

        async def retain() -> Any:
            return await apply_retention(
                store.sessions,
                store.archives,
                "audit",
                days=AUDIT_RETENTION_FLOOR_DAYS,
                organization_id=org,
                clock=clock,
            )

        clock.set(recorded + dt.timedelta(days=AUDIT_RETENTION_FLOOR_DAYS))
        assert (await retain()).counts["archives"] == 0
        assert await _count(store, PhiAuditArchive, org) == 1
        clock.advance(TICK)
        deleted = await retain()
        assert (deleted.counts["archives"], deleted.counts["records"], deleted.set_aside) == (
            1,
            1,
            [],
        )
        assert await _count(store, PhiAuditArchive, org) == 0
        report = await verify_audit(store.sessions, store.archives, organization_id=org)
        assert not report.needs_attention


@pytest.mark.parametrize("direction", DIRECTIONS)
async def test_a_checkpoint_falls_due_by_the_clock(open_store: Any, direction: str) -> None:
    first = pinned(
        direction,
        dt.datetime(2043, 7, 1, tzinfo=dt.UTC),
        dt.datetime(2013, 7, 1, tzinfo=dt.UTC),
    )
    clock = ManualClock(first)
    async with open_store(clock) as store:
        every = dt.timedelta(hours=store.settings.audit_checkpoint_hours)
        org, _ = await new_org(store)

        async def record() -> int:
            async with store.unit(org) as uow:
                await uow.audit.record(ACCESS)
            return await _count(store, PhiAuditCheckpoint, org)

        assert await record() == 1  # the first record claims the first checkpoint
        clock.set(first + every - TICK)
        assert await record() == 1
        clock.advance(TICK)
        assert await record() == 2  # a full interval since the last claim
        clock.advance(every - TICK)
        assert await record() == 2
        async with store.sessions() as session:
            written = (
                await session.execute(
                    sa.select(PhiAuditCheckpoint.seq, PhiAuditCheckpoint.written_at)
                    .where(PhiAuditCheckpoint.organization_id == org)
                    .order_by(PhiAuditCheckpoint.seq)
                )
            ).all()
        stamps = [
            (seq, at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at) for seq, at in written
        ]
        assert stamps == [(1, first), (3, first + every)]
