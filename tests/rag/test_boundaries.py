"""RAG time windows at their exact values, with a second organization using the same rules.

``rule_usage`` and ``top_rules`` read ``[since, until)``: a context retrieved exactly at
``since`` counts, one a millisecond earlier (the precision kept) does not; one exactly
at ``until`` does not, one a millisecond earlier does. Both read paths (normalized, and
legacy while it is read) are held to it, at a year edge. Organization B retrieves the
same rule ids at the same instants, more often, and marks them used: A's answers count
A's jobs only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from execstore.errors import InvalidArgument
from support.timeline import new_jobs, new_org

from .conftest import make_context

MS = dt.timedelta(milliseconds=1)
SINCE = dt.datetime(2025, 12, 31, 23, 0, tzinfo=dt.UTC)
UNTIL = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TIMES = [SINCE - MS, SINCE, SINCE + MS, UNTIL - MS, UNTIL, UNTIL + MS]


async def _saved(store: Any, mode: str, copies: int) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """An organization with ``copies`` jobs retrieving R-0000 and R-0001 at each of TIMES,
    R-0000 marked used in every job; its id and its jobs (in TIMES order, copies together)."""
    org, workflow = await new_org(store)
    jobs = await new_jobs(store, org, copies * len(TIMES), workflow=workflow)
    async with store.unit(org, rag_mode=mode) as uow:
        for n, job in enumerate(jobs):
            await uow.rag.save(job, make_context(2, at=TIMES[n // copies]))
            await uow.rag.mark_rule_used(job, "R-0000", step_index=1)
    return org, jobs


@pytest.mark.parametrize("mode", ["normalized", "dual_write_read_legacy"])
async def test_since_is_inclusive_and_until_exclusive_to_the_millisecond(
    rag_store: Any, mode: str
) -> None:
    a, jobs = await _saved(rag_store, mode, copies=1)
    await _saved(rag_store, mode, copies=2)  # B: the same rules at the same instants, twice
    by_time = dict(zip(TIMES, jobs, strict=True))
    cases = [
        (SINCE, UNTIL, [SINCE, SINCE + MS, UNTIL - MS]),
        (SINCE + MS, UNTIL, [SINCE + MS, UNTIL - MS]),
        (SINCE - MS, UNTIL, [SINCE - MS, SINCE, SINCE + MS, UNTIL - MS]),
        (SINCE, UNTIL - MS, [SINCE, SINCE + MS]),
        (SINCE, UNTIL + MS, [SINCE, SINCE + MS, UNTIL - MS, UNTIL]),
        (UNTIL, UNTIL, []),
        (UNTIL, UNTIL + MS, [UNTIL]),
    ]
    async with rag_store.unit(a, rag_mode=mode) as uow:
        for since, until, times in cases:
            page = await uow.rag.rule_usage("R-0001", since, until)
            assert [(u.job_id, u.retrieved_at) for u in page.items] == [
                (by_time[t], t) for t in times
            ], (since, until)
            top = await uow.rag.top_rules(since, until)
            counted = [(t.rule_id, t.retrieved, t.used) for t in top]
            n = len(times)
            assert counted == ([("R-0000", n, n), ("R-0001", n, 0)] if n else []), (since, until)
        # Page by page, one job at a time: the same jobs, none twice.
        seen, after = [], None
        while True:
            page = await uow.rag.rule_usage("R-0000", SINCE, UNTIL, limit=1, cursor=after)
            seen += [u.job_id for u in page.items]
            if page.next_cursor is None:
                break
            after = page.next_cursor
        assert seen == [by_time[t] for t in (SINCE, SINCE + MS, UNTIL - MS)]


@pytest.mark.parametrize("mode", ["normalized", "dual_write_read_legacy"])
async def test_window_ends_between_two_milliseconds_hold_to_the_stored_times(
    rag_store: Any, mode: str
) -> None:
    # Contexts are kept to the millisecond: one stored at SINCE is before SINCE + 0.5 ms
    # (not in a window starting there) and before UNTIL = SINCE + 0.5 ms (in a window
    # ending there).
    half = MS / 2
    org, workflow = await new_org(rag_store)
    [job] = await new_jobs(rag_store, org, 1, workflow=workflow)
    async with rag_store.unit(org, rag_mode=mode) as uow:
        await uow.rag.save(job, make_context(2, at=SINCE + dt.timedelta(microseconds=400)))
        assert (await uow.rag.get(job)).retrieved_at == SINCE  # type: ignore[union-attr]
        day = dt.timedelta(days=1)
        for since, until, found in [
            (SINCE + half, SINCE + day, []),
            (SINCE - day, SINCE + half, [job]),
            (SINCE, SINCE + half, [job]),
            (SINCE - half, SINCE, []),
            (SINCE - half, SINCE + dt.timedelta(microseconds=1), [job]),
        ]:
            page = await uow.rag.rule_usage("R-0000", since, until)
            assert [u.job_id for u in page.items] == found, (since, until)
            top = await uow.rag.top_rules(since, until)
            assert [t.retrieved for t in top] == [1, 1] * len(found), (since, until)
        with pytest.raises(InvalidArgument, match="until"):
            await uow.rag.rule_usage("R-0000", SINCE + half, SINCE + half / 2)


async def test_a_backfill_for_one_organization_moves_only_its_rows(rag_store: Any) -> None:
    from execstore.rag.backfill import backfill_rag

    orgs = []
    for _ in range(2):
        org, workflow = await new_org(rag_store)
        jobs = await new_jobs(rag_store, org, 2, workflow=workflow)
        async with rag_store.unit(org, rag_mode="legacy") as uow:
            for job in jobs:
                await uow.rag.save(job, make_context(2))  # the same rules, the same instant
        orgs.append((org, jobs))
    (a, a_jobs), (b, b_jobs) = orgs
    report = await backfill_rag(rag_store.sessions, organization_id=a)
    assert (report.counts["moved"], report.set_aside) == (2, [])
    async with rag_store.unit(a, rag_mode="normalized") as uow:
        assert [len((await uow.rag.get(job)).rules) for job in a_jobs] == [2, 2]
    async with rag_store.unit(b, rag_mode="normalized") as uow:
        assert [await uow.rag.find(job) for job in b_jobs] == [None, None]
    assert (await backfill_rag(rag_store.sessions, organization_id=b)).counts["moved"] == 2


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_backfill_skips_a_row_another_worker_holds(rag_store: Any) -> None:
    import asyncio

    import sqlalchemy as sa

    from execstore.rag.backfill import backfill_rag
    from execstore.schema.rag import execution_rag_rules_legacy as legacy_table

    org, workflow = await new_org(rag_store)
    jobs = await new_jobs(rag_store, org, 3, workflow=workflow)
    async with rag_store.unit(org, rag_mode="legacy") as uow:
        for job in jobs:
            await uow.rag.save(job, make_context(2))
    async with rag_store.sessions() as holder, holder.begin():
        held = await holder.scalar(
            sa.select(legacy_table.c.id)
            .where(legacy_table.c.job_id == str(jobs[1]))
            .with_for_update()
        )
        assert held is not None
        # Another worker has claimed one row: this run moves the others without waiting.
        report = await asyncio.wait_for(
            backfill_rag(rag_store.sessions, organization_id=org, batch_size=10), 10
        )
        assert (report.counts["moved"], report.set_aside) == (2, [])
    assert (await backfill_rag(rag_store.sessions, organization_id=org)).counts["moved"] == 1
