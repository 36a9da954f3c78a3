"""Dashboard windows at their exact values, with a second organization at the same instants.

- listing: ``created_from`` inclusive, ``created_to`` exclusive, to the microsecond, at
  a month edge, page by page; a page holds 1 to 200 rows (``limit`` above is served at
  200, below 1 refused);
- summaries: ``days=N`` is the N UTC days up to the clock's today, across 29 February;
  an execution at a day's first instant counts in that day, one a microsecond earlier
  in the day before; explicit ``first_day``..``last_day`` both inclusive; live (both
  backends) and the rollup (PostgreSQL) agree;
- organization B has executions at the same instants, in a workflow of the same name,
  and moves while A does not: A's listings and summaries never count B's, and B's
  writes mark only B's summary groups stale.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.clock import ManualClock
from execstore.errors import InvalidArgument
from execstore.metadata import refresh_summaries
from execstore.pages import MAX_LIMIT
from execstore.schema import models as m
from support.timeline import TICK, new_org, utc


async def _executions(
    store: Any, org: uuid.UUID, workflow: uuid.UUID, times: list[dt.datetime]
) -> list[uuid.UUID]:
    """One tracked job of ``org`` created at each of ``times``."""
    jobs = []
    async with store.unit(org) as uow:
        for at in times:
            job = await uow.jobs.create(workflow_id=workflow, created_at=at)
            await uow.metadata.create(job.id, total_steps=2)
            jobs.append(job.id)
    return jobs


async def _listed(
    store: Any, org: uuid.UUID, *, limit: int = 50, **filters: Any
) -> list[uuid.UUID]:
    found: list[uuid.UUID] = []
    cursor = None
    while True:
        async with store.unit(org) as uow:
            page = await uow.metadata.list(cursor=cursor, limit=limit, **filters)
        found += [item.job_id for item in page.items]
        assert all(item.organization_id == org for item in page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


async def test_created_from_is_inclusive_and_created_to_exclusive_to_the_microsecond(
    store_at: Any,
) -> None:
    start, end = utc(2031, 3, 1), utc(2031, 4, 1)
    times = [start - TICK, start, start + TICK, end - TICK, end, end + TICK]
    clock = ManualClock(utc(2031, 2, 1))
    async with store_at(clock) as store:
        a, wf_a = await new_org(store, "A")
        b, wf_b = await new_org(store, "B")
        jobs = await _executions(store, a, wf_a, times)
        await _executions(store, b, wf_b, times)  # the same instants in B
        newest_first = list(reversed(jobs))
        for limit in (50, 1, 2):
            window = await _listed(store, a, limit=limit, created_from=start, created_to=end)
            assert window == newest_first[2:5]
        assert await _listed(store, a, created_from=start) == newest_first[:5]
        assert await _listed(store, a, created_from=start + TICK) == newest_first[:4]
        assert await _listed(store, a, created_to=end) == newest_first[2:]
        assert await _listed(store, a, created_to=end + TICK) == newest_first[1:]
        assert await _listed(store, a, created_from=end, created_to=end) == []
        assert await _listed(store, a, created_from=end, created_to=end + TICK) == [jobs[4]]


async def test_a_page_holds_one_to_max_limit_rows(store_at: Any) -> None:
    clock = ManualClock(utc(2031, 5, 1))
    async with store_at(clock) as store:
        org, workflow = await new_org(store)
        await _executions(store, org, workflow, [utc(2031, 5, 1, h) for h in range(3)])
        async with store.unit(org) as uow:
            full = await uow.metadata.list(limit=MAX_LIMIT)
            assert (len(full.items), full.next_cursor) == (3, None)
            one = await uow.metadata.list(limit=1)
            assert (len(one.items), one.next_cursor is not None) == (1, True)
            two = await uow.metadata.list(limit=2)
            assert (len(two.items), two.next_cursor is not None) == (2, True)
            all_three = await uow.metadata.list(limit=3)
            assert (len(all_three.items), all_three.next_cursor) == (3, None)
            for refused in (0, MAX_LIMIT + 1):
                with pytest.raises(InvalidArgument, match="limit"):
                    await uow.metadata.list(limit=refused)


async def _pending(store: Any, org: uuid.UUID, **window: Any) -> tuple[int, list[dt.date]]:
    async with store.unit(org) as uow:
        summary = await uow.metadata.summary(**window)
    assert summary.organization_id == org
    return summary.totals.pending, sorted({day.day for day in summary.days})


async def test_the_summary_days_are_whole_utc_days_across_a_leap_day(store_at: Any) -> None:
    times = [
        utc(2032, 2, 27, 23, 59, 59, 999_999),
        utc(2032, 2, 28),
        utc(2032, 2, 29, 12),
        utc(2032, 3, 1, 23, 59, 59, 999_999),
        utc(2032, 3, 2),
    ]
    clock = ManualClock(utc(2032, 2, 1))
    async with store_at(clock) as store:
        a, wf_a = await new_org(store, "A")
        b, wf_b = await new_org(store, "B")
        await _executions(store, a, wf_a, times)
        await _executions(store, b, wf_b, times + times)  # twice as many, same instants
        clock.set(utc(2032, 3, 1, 12))  # today is 1 March; 2 March is tomorrow
        feb28, feb29, mar1 = dt.date(2032, 2, 28), dt.date(2032, 2, 29), dt.date(2032, 3, 1)
        expected = {
            "days=1": (1, [mar1]),
            "days=2": (2, [feb29, mar1]),
            "days=3": (3, [feb28, feb29, mar1]),
            "days=4": (4, [dt.date(2032, 2, 27), feb28, feb29, mar1]),
            "28th only": (1, [feb28]),
            "27th to 28th": (2, [dt.date(2032, 2, 27), feb28]),
            "1st to 2nd": (2, [mar1, dt.date(2032, 3, 2)]),
        }
        windows: dict[str, dict[str, Any]] = {
            "days=1": {"days": 1},
            "days=2": {"days": 2},
            "days=3": {"days": 3},
            "days=4": {"days": 4},
            "28th only": {"first_day": feb28, "last_day": feb28},
            "27th to 28th": {"first_day": dt.date(2032, 2, 27), "last_day": feb28},
            "1st to 2nd": {"first_day": mar1, "last_day": dt.date(2032, 3, 2)},
        }
        live = {name: await _pending(store, a, live=True, **w) for name, w in windows.items()}
        assert live == expected
        if store.engine.dialect.name == "postgresql":
            async with store.sessions() as session, session.begin():
                await refresh_summaries(session, clock=clock)
            rollup = {name: await _pending(store, a, **w) for name, w in windows.items()}
            assert rollup == expected
        with pytest.raises(InvalidArgument, match="days"):
            await _pending(store, a, days=0)
        async with store.unit(a) as uow:
            default = await uow.metadata.summary()  # 30 days unless told
        assert (default.first_day, default.last_day) == (dt.date(2032, 2, 1), mar1)


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_another_organizations_writes_mark_only_its_own_groups_stale(
    store_at: Any,
) -> None:
    day = utc(2032, 6, 15, 9)
    clock = ManualClock(day)
    async with store_at(clock) as store:
        a, wf_a = await new_org(store, "A")
        b, wf_b = await new_org(store, "B")
        [job_a] = await _executions(store, a, wf_a, [day])
        [job_b] = await _executions(store, b, wf_b, [day])
        async with store.sessions() as session, session.begin():
            await refresh_summaries(session, clock=clock)
        before = await _pending(store, a, days=1)
        async with store.unit(b) as uow:
            await uow.metadata.start(job_b)  # a change of status alone
        async with store.sessions() as session:
            stale = (
                await session.execute(
                    sa.select(
                        m.ExecutionSummaryDirty.organization_id,
                        m.ExecutionSummaryDirty.workflow_id,
                        m.ExecutionSummaryDirty.day,
                    ).where(m.ExecutionSummaryDirty.organization_id.in_([a, b]))
                )
            ).all()
        assert stale == [(b, wf_b, day.date())]
        async with store.sessions() as session, session.begin():
            await refresh_summaries(session, clock=clock)
        assert await _pending(store, a, days=1) == before == (1, [day.date()])
        async with store.unit(b) as uow:
            summary = await uow.metadata.summary(days=1)
        assert (summary.totals.pending, summary.totals.running) == (0, 1)
        async with store.unit(a) as uow:
            assert (await uow.metadata.get(job_a)).status.name == "PENDING"
