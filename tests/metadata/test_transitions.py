"""Every metadata lifecycle write from every status: allowed ones do what they say,
the others raise their typed error and change nothing (both backends).

The lifecycle (README, "Execution metadata"): ``create`` (pending or queued) -> ``start``
(running) -> ``progress`` any number of times -> ``complete`` or ``fail`` (failed,
cancelled, timed out). ``progress``, ``complete`` and ``fail`` accept any live status
(pending, queued, running: a queued run can be cancelled or time out; ``complete``
without a start leaves ``duration_ms`` None); a finished run accepts nothing.

A refused write is tried inside a unit that then *commits*, so a write the repository
made before raising would persist and show in the row compared afterwards.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.errors import Conflict, InvalidTransition, NotFound
from execstore.schema import models as m
from execstore.schema.enums import ExecutionStatus as S

from .conftest import T0, World, make_world, new_job

STARTED = T0 + dt.timedelta(seconds=30)
FINISHED = T0 + dt.timedelta(minutes=5)
LATER = T0 + dt.timedelta(minutes=9)
LIVE = (S.PENDING, S.QUEUED, S.RUNNING)
FINISHED_STATES = (S.COMPLETED, S.FAILED, S.CANCELLED, S.TIMED_OUT)
NONE = "untracked"
"""A job of the organization without a metadata row."""
STATES: tuple[S | str, ...] = (*LIVE, *FINISHED_STATES, NONE)


async def jobs_in(store: Any, world: World) -> dict[S | str, uuid.UUID]:
    """One committed job of ``world`` per state of STATES (live ones with progress reported)."""
    jobs = {state: await new_job(store, world, track=False) for state in STATES}
    async with store.unit(world.org) as uow:
        md = uow.metadata
        for state, job in jobs.items():
            if state == NONE:
                continue
            await md.create(
                job, total_steps=12, status=S.QUEUED if state is S.QUEUED else S.PENDING
            )
            if state not in (S.PENDING, S.QUEUED):
                await md.start(job, started_at=STARTED)
            if state in LIVE:
                await md.progress(job, completed_steps=3, total_steps=12)
                continue
            await md.progress(job, completed_steps=7, total_steps=12)
            if state is S.COMPLETED:
                await md.complete(job, completed_at=FINISHED)
            else:
                await md.fail(
                    job, "E_BEFORE", "failed before", status=S(state), completed_at=FINISHED
                )
    return jobs


Stored = dict[uuid.UUID, tuple[dict[str, Any] | None, list[tuple[int, int]]]]


async def stored(store: Any, jobs: list[uuid.UUID]) -> Stored:
    """Per job: every column of its metadata row (None without one) and its progress rows."""
    table: sa.Table = m.ExecutionMetadata.__table__  # type: ignore[assignment]
    progress = m.ExecutionProgress
    async with store.sessions() as session:
        rows = (await session.execute(sa.select(table).where(table.c.job_id.in_(jobs)))).mappings()
        by_job = {row["job_id"]: dict(row) for row in rows}
        reported = (
            await session.execute(
                sa.select(progress.job_id, progress.completed_steps, progress.total_steps).where(
                    progress.job_id.in_(jobs)
                )
            )
        ).all()
    return {
        job: (by_job.get(job), [(done, total) for j, done, total in reported if j == job])
        for job in jobs
    }


@dataclass(frozen=True)
class Write:
    """One lifecycle write, the statuses it is allowed from, and what it leaves."""

    name: str
    call: Callable[[Any, uuid.UUID], Awaitable[None]]
    allowed: tuple[S | str, ...]
    after: Callable[[S | str, dict[str, Any], dict[str, Any] | None], dict[str, Any]]
    """Given the state, the row before (or {}) and the row after: the columns that must
    hold after the write (a subset of the row)."""
    progress_after: Callable[[S | str], list[tuple[int, int]]]


def _started(state: S | str) -> dt.datetime | None:
    return STARTED if state is S.RUNNING else None


def _finished(status: S, *, code: str | None = None) -> Any:
    def after(state: S | str, before: dict[str, Any], row: dict[str, Any] | None) -> dict[str, Any]:
        started = _started(state)
        return {
            **{k: v for k, v in before.items() if k not in ("status",)},
            "status": status,
            "started_at": started,
            "completed_at": LATER,
            "duration_ms": None
            if started is None
            else int((LATER - started).total_seconds() * 1000),
            "total_steps": 12,
            # complete: every step; fail: the run's in-flight count (3 reported).
            "completed_steps": 12 if status is S.COMPLETED else 3,
            "error_code": code,
            "error_message": None if code is None else "it broke",
        }

    return after


def _create(status: S) -> Write:
    return Write(
        f"create-{status.name.lower()}",
        lambda md, job: md.create(job, total_steps=4, status=status),
        (NONE,),
        lambda state, before, row: {
            "status": status,
            "total_steps": 4,
            "completed_steps": 0,
            "created_at": T0,
            "started_at": None,
            "completed_at": None,
        },
        lambda state: [],
    )


def _fail(status: S) -> Write:
    return Write(
        f"fail-{status.name.lower()}",
        lambda md, job: md.fail(job, "E_NOW", "it broke", status=status, completed_at=LATER),
        LIVE,
        _finished(status, code="E_NOW"),
        lambda state: [],
    )


WRITES = [
    _create(S.PENDING),
    _create(S.QUEUED),
    Write(
        "start",
        lambda md, job: md.start(job, started_at=LATER),
        (S.PENDING, S.QUEUED),
        lambda state, before, row: {**before, "status": S.RUNNING, "started_at": LATER},
        lambda state: [(3, 12)],
    ),
    Write(
        "progress",
        lambda md, job: md.progress(job, completed_steps=5, total_steps=10),
        LIVE,
        lambda state, before, row: before,  # the row itself is not written in flight
        lambda state: [(5, 10)],
    ),
    Write(
        "complete",
        lambda md, job: md.complete(job, completed_at=LATER),
        LIVE,
        _finished(S.COMPLETED),
        lambda state: [],
    ),
    _fail(S.FAILED),
    _fail(S.CANCELLED),
    _fail(S.TIMED_OUT),
]


def _error_for(write: Write, state: S | str) -> tuple[type[Exception], str]:
    if write.name.startswith("create"):
        return Conflict, "already exists"
    if state == NONE:
        return NotFound, "not found"
    return InvalidTransition, f"it is {S(state).name.lower()}"


@pytest.mark.parametrize("write", WRITES, ids=lambda w: w.name)
async def test_each_write_from_every_status(store: Any, world: World, write: Write) -> None:
    other = await make_world(store)
    jobs = await jobs_in(store, world)
    before = await stored(store, list(jobs.values()))
    # Another organization's unit: NotFound in every status, nothing written (committed).
    async with store.unit(other.org) as uow:
        for job in jobs.values():
            with pytest.raises(NotFound):
                await write.call(uow.metadata, job)
    assert await stored(store, list(jobs.values())) == before
    # The organization's own unit, committed after every attempt.
    async with store.unit(world.org) as uow:
        for state, job in jobs.items():
            if state in write.allowed:
                await write.call(uow.metadata, job)
            else:
                error, message = _error_for(write, state)
                with pytest.raises(error, match=message):
                    await write.call(uow.metadata, job)
    after = await stored(store, list(jobs.values()))
    failures = []
    for state, job in jobs.items():
        if state not in write.allowed:
            if after[job] != before[job]:
                failures.append((state, "changed", before[job], after[job]))
            continue
        row, progress = after[job]
        assert row is not None, (write.name, state)
        expected = write.after(state, before[job][0] or {}, row)
        got = {k: row[k] for k in expected}
        if got != expected or progress != write.progress_after(state):
            failures.append((state, expected, got, progress))
    assert failures == []
