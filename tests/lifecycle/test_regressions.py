"""Defects the lifecycle machine found, each pinned by a test of its own (both backends)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from execstore.audit import verify_audit
from execstore.audit.archival import apply_audit_retention, archive_audit
from execstore.clock import ManualClock
from support.timeline import new_org, utc

from .machine import FaultyBlobs, SimulatedCrash


async def test_audit_retention_killed_after_deleting_a_segment_blob_is_finished_by_the_next_run(
    store_at: Any,
) -> None:
    """The run verified the segment, checkpointed its end, wrote its tombstone and deleted
    its blob, then died before deleting the pointer row. The next run found the row, could
    not read the blob and set it aside on every run after; verify reported the chain
    unreadable for good. The tombstone is the evidence that the delete was decided."""
    clock = ManualClock(utc(2033, 3, 14, 9))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        other, _ = await new_org(store)
        for each in (org, other):
            async with store.unit(each) as uow:
                await uow.audit.record_many([{"action": "view", "resource_type": "claim"}] * 2)
        clock.advance(dt.timedelta(days=91))
        await archive_audit(store.sessions, store.archives, hot_days=90, clock=clock)
        clock.advance(dt.timedelta(days=2192))
        faulty = FaultyBlobs(store.archives.store)
        store.archives.store = faulty
        faulty.arm(2, after=True)  # checkpoint, tombstone, then the segment's delete
        with pytest.raises(SimulatedCrash):
            await apply_audit_retention(
                store.sessions,
                store.archives,
                retention_days=2192,
                organization_id=org,
                clock=clock,
            )
        assert faulty.tripped
        store.archives.cache.clear()  # a new process: nothing remembered
        again = await apply_audit_retention(
            store.sessions, store.archives, retention_days=2192, clock=clock
        )
        assert again.set_aside == []
        assert again.segments == 2  # the crashed one finished, the other organization's whole
        report = await verify_audit(store.sessions, store.archives)
        assert [o.problem for o in report.organizations if o.organization_id in (org, other)] == [
            None,
            None,
        ]
        async with store.unit(org) as uow:
            assert (await uow.audit.query()).records == []
