"""``uow.jobs.set_status`` from every status to every status, on both backends.

``jobs.status`` is the orchestration service's free text (README, "Job results"): every
change is allowed and records the status, the error message given, and a start or
completion time only when one is given (a time not given is kept). Another
organization's job is NotFound and stays exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from execstore.errors import NotFound

STATUSES = ["pending", "running", "completed", "failed", "cancelled"]
STARTED = dt.datetime(2026, 4, 1, 8, 0, tzinfo=dt.UTC)
DONE = dt.datetime(2026, 4, 1, 8, 5, tzinfo=dt.UTC)


async def _job(store: Any, org: uuid.UUID) -> uuid.UUID:
    async with store.unit(org) as uow:
        await uow.reference.add_organization("o")
        workflow = await uow.reference.add_workflow("wf")
        return (await uow.jobs.create(workflow_id=workflow.id)).id


async def test_every_status_change_is_recorded_and_keeps_what_it_is_not_given(
    store: Any,
) -> None:
    org, other = uuid.uuid4(), uuid.uuid4()
    job, theirs = await _job(store, org), await _job(store, other)
    for source in STATUSES:
        for target in STATUSES:
            async with store.unit(org) as uow:
                await uow.jobs.set_status(
                    job, source, error_message=f"was {source}", started_at=STARTED
                )
                before = await uow.jobs.get(job)
                # A change with no times keeps both; one with a completion time sets it.
                changed = await uow.jobs.set_status(job, target, error_message=f"now {target}")
                assert (changed.status, changed.error_message) == (target, f"now {target}")
                assert (changed.started_at, changed.completed_at) == (
                    before.started_at,
                    before.completed_at,
                )
                done = await uow.jobs.set_status(job, target, completed_at=DONE)
                assert (done.started_at, done.completed_at, done.error_message) == (
                    STARTED,
                    DONE,
                    None,
                )
        async with store.unit(org) as uow:
            assert (await uow.jobs.get(job)).status == STATUSES[-1]  # committed
            await uow.jobs.set_status(job, source)
        # Another organization cannot move it, whatever it is in (and vice versa).
        async with store.unit(other) as uow:
            before_theirs = await uow.jobs.get(theirs)
            for target in STATUSES:
                with pytest.raises(NotFound):
                    await uow.jobs.set_status(job, target, completed_at=DONE)
        async with store.unit(org) as uow:
            for target in STATUSES:
                with pytest.raises(NotFound):
                    await uow.jobs.set_status(theirs, target, completed_at=DONE)
            mine = await uow.jobs.get(job)
            assert (mine.status, mine.completed_at) == (source, DONE)
        async with store.unit(other) as uow:
            assert await uow.jobs.get(theirs) == before_theirs
    async with store.unit(org) as uow:
        with pytest.raises(NotFound):
            await uow.jobs.set_status(uuid.uuid4(), "running")
