"""Job timestamps keep their instant whatever offset the caller used, on both backends."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

CHICAGO = dt.timezone(dt.timedelta(hours=-5))


async def test_times_with_an_offset_are_stored_as_the_same_instant(store: Any) -> None:
    # SQLite keeps a timestamp's wall time and drops its offset: without conversion to UTC
    # 23:30-05:00 would read back as 23:30 UTC, five hours early (and a month early here).
    org = uuid.uuid4()
    created = dt.datetime(2024, 5, 31, 23, 30, tzinfo=CHICAGO)
    started = dt.datetime(2024, 5, 31, 23, 31, tzinfo=CHICAGO)
    done = dt.datetime(2024, 6, 1, 0, 45, tzinfo=CHICAGO)
    async with store.unit(org) as uow:
        await uow.reference.add_organization("o")
        workflow = await uow.reference.add_workflow("wf")
        job = await uow.jobs.create(workflow_id=workflow.id, created_at=created)
        await uow.jobs.set_status(job.id, "completed", started_at=started, completed_at=done)
    async with store.unit(org) as uow:
        got = await uow.jobs.get(job.id)
    assert (got.created_at, got.started_at, got.completed_at) == (created, started, done)
    assert got.created_at.utcoffset() == dt.timedelta(0)
