"""Dashboard listings on both backends: order, filters, keyset pages, the cap, scoping."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.errors import InvalidArgument, InvalidCursor
from execstore.metadata.listing import list_cursor, list_position
from execstore.pages import MAX_LIMIT, encode_cursor
from execstore.schema.enums import ExecutionStatus

from .conftest import T0, World, make_world, new_job


async def _all_pages(store: Any, org: uuid.UUID, **filters: Any) -> list[list[uuid.UUID]]:
    pages, cursor = [], None
    while True:
        async with store.unit(org) as uow:
            page = await uow.metadata.list(cursor=cursor, **filters)
        pages.append([item.job_id for item in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages


async def _jobs_at(store: Any, world: World, times: list[dt.datetime]) -> list[uuid.UUID]:
    return [await new_job(store, world, created_at=t) for t in times]


async def test_pages_are_newest_first_and_exact_even_with_ties(store: Any, world: World) -> None:
    # Five jobs share one instant: the job id breaks the tie, so no page repeats or skips.
    times = [T0 + dt.timedelta(minutes=i // 5) for i in range(13)]
    jobs = await _jobs_at(store, world, times)
    expected = [
        j
        for _, j in sorted(zip(times, jobs, strict=True), key=lambda p: (p[0], p[1]), reverse=True)
    ]
    pages = await _all_pages(store, world.org, limit=4)
    assert [len(p) for p in pages] == [4, 4, 4, 1]
    assert [j for p in pages for j in p] == expected


async def test_filters_combine(store: Any, world: World) -> None:
    jobs = await _jobs_at(store, world, [T0 + dt.timedelta(hours=i) for i in range(6)])
    other_wf = await new_job(
        store, world, created_at=T0 + dt.timedelta(hours=7), workflow=world.other_workflow
    )
    no_client = await new_job(store, world, created_at=T0 + dt.timedelta(hours=8), with_claim=False)
    async with store.unit(world.org) as uow:
        for job in jobs[:4]:
            await uow.metadata.start(job, started_at=T0)
        await uow.metadata.fail(jobs[0], "E_LOGIN", "bad password")
        await uow.metadata.fail(jobs[1], "E_TIMEOUT", "slow portal")
        await uow.metadata.complete(jobs[2])
        md = uow.metadata

        async def ids(**f: Any) -> list[uuid.UUID]:
            return [item.job_id for item in (await md.list(**f)).items]

        assert await ids(statuses={ExecutionStatus.FAILED}) == [jobs[1], jobs[0]]
        assert await ids(statuses=[ExecutionStatus.FAILED, ExecutionStatus.RUNNING]) == [
            jobs[3],
            jobs[1],
            jobs[0],
        ]
        assert await ids(error_code="E_LOGIN") == [jobs[0]]
        assert await ids(workflow_id=world.other_workflow) == [other_wf]
        assert no_client not in await ids(client_id=world.client)
        assert len(await ids(client_id=world.client)) == 7
        assert await ids(
            created_from=T0 + dt.timedelta(hours=2), created_to=T0 + dt.timedelta(hours=4)
        ) == [jobs[3], jobs[2]]
        assert await ids(statuses={ExecutionStatus.COMPLETED}, workflow_id=world.workflow) == [
            jobs[2]
        ]
        page = await md.list(statuses={ExecutionStatus.FAILED})
    # Items carry the joined names, as get() does.
    assert {item.workflow_name for item in page.items} == {"Eligibility check"}
    assert page.items[0].all_account_names == ["portal-beta", "portal-gamma"]
    assert page.items[0].error_message == "slow portal"


async def test_pages_stay_exact_while_rows_are_inserted_and_updated(
    store: Any, world: World
) -> None:
    jobs = await _jobs_at(store, world, [T0 + dt.timedelta(minutes=i) for i in range(10)])
    async with store.unit(world.org) as uow:
        first = await uow.metadata.list(limit=4)
    # Meanwhile: newer jobs arrive, shown ones and unseen ones change status.
    await _jobs_at(store, world, [T0 + dt.timedelta(hours=1, minutes=i) for i in range(3)])
    async with store.unit(world.org) as uow:
        await uow.metadata.start(jobs[9])
        await uow.metadata.start(jobs[2])
        await uow.metadata.fail(jobs[2], "E", "boom")
    seen = [item.job_id for item in first.items]
    cursor = first.next_cursor
    while cursor is not None:
        async with store.unit(world.org) as uow:
            page = await uow.metadata.list(cursor=cursor, limit=4)
        seen += [item.job_id for item in page.items]
        cursor = page.next_cursor
    assert seen == list(reversed(jobs))


async def test_a_limit_outside_one_to_max_is_refused_not_capped(store: Any, world: World) -> None:
    async with store.unit(world.org) as uow:
        page = await uow.metadata.list(limit=MAX_LIMIT)
        assert page.next_cursor is None
        for bad in (0, -1, MAX_LIMIT + 1, 10_000, True, 1.5, "10", None):
            with pytest.raises(InvalidArgument, match="limit"):
                await uow.metadata.list(limit=bad)


async def test_a_cursor_that_we_did_not_issue_is_rejected(store: Any, world: World) -> None:
    issued = list_cursor(dt.datetime(2026, 3, 2, tzinfo=dt.UTC), uuid.uuid4())
    altered = issued[:-2] + ("A" if issued[-2] != "A" else "B") + issued[-1]
    of_logs = encode_cursor("logs", (dt.datetime(2026, 3, 2, tzinfo=dt.UTC), 7))
    async with store.unit(world.org) as uow:
        for bad in ("", "m1", "m1!!!", "x1" + "A" * 32, "m1" + "A" * 10, altered, of_logs, 42):
            with pytest.raises(InvalidCursor):
                await uow.metadata.list(cursor=bad)


def test_cursor_round_trips_microseconds() -> None:
    when = dt.datetime(2026, 3, 2, 9, 30, 1, 123456, tzinfo=dt.UTC)
    job = uuid.uuid4()
    assert list_position(list_cursor(when, job)) == (when, job)
    before_epoch = dt.datetime(1969, 7, 20, 20, 17, tzinfo=dt.UTC)
    assert list_position(list_cursor(before_epoch, job)) == (before_epoch, job)


async def test_listing_never_shows_another_organization(store: Any, world: World) -> None:
    other = await make_world(store)
    mine = await _jobs_at(store, world, [T0])
    theirs = await _jobs_at(store, other, [T0, T0 + dt.timedelta(seconds=1)])
    assert [j for p in await _all_pages(store, world.org) for j in p] == mine
    assert sorted(j for p in await _all_pages(store, other.org) for j in p) == sorted(theirs)


COLLIDING_UUIDS = sa.text("""
    SELECT (array_agg(id))[1] AS first, (array_agg(id))[2] AS second
    FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, 300000)) u
    GROUP BY uuid_hash(id) HAVING count(*) > 1
    LIMIT 1
""")


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])  # the hash-keyed index is PostgreSQL's
async def test_organizations_whose_ids_hash_alike_still_see_only_their_own(store: Any) -> None:
    """The listing index leads with uuid_hash(organization_id): two organizations whose
    uuids share a hash share a range of it, and the statement's uuid equality alone keeps
    them apart. 300,000 random uuids hold about ten such pairs (a 32-bit hash)."""
    async with store.engine.connect() as conn:
        pair = (await conn.execute(COLLIDING_UUIDS)).one()
    first, second = await make_world(store, pair.first), await make_world(store, pair.second)
    mine = await _jobs_at(store, first, [T0, T0 + dt.timedelta(seconds=2)])
    theirs = await _jobs_at(store, second, [T0 + dt.timedelta(seconds=1)])
    assert sorted(j for p in await _all_pages(store, first.org) for j in p) == sorted(mine)
    assert [j for p in await _all_pages(store, second.org) for j in p] == theirs
