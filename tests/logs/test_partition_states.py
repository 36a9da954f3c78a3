"""A log month in each state of its partition, and what every operation does there.

PostgreSQL only (SQLite has no partitions: its fallback deletes lines chunk by chunk).
README, "Execution logs": a month is attached, then detached by archival (readers keep
seeing it), then dropped once its pointer rows count every line. A run that stops
between the detach and the drop leaves it detached, and the next run finishes it. A line
appended for a month whose partition is detached or dropped gets a new partition on the
spot; deleting a job removes its lines wherever they are; every line reads once.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.archival import reconcile
from execstore.errors import NotFound
from execstore.logs import LogArchives, NewLogEntry
from execstore.schema import models as m

from .conftest import archive, hot_count, lines, months_ago, read_all

pytestmark = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)]
)


async def detached(store: Any) -> int:
    async with store.sessions() as session:
        return int(
            await session.scalar(sa.select(sa.func.count()).select_from(m.ExecutionLogDetached))
            or 0
        )


async def org_with_jobs(store: Any, ids: list[uuid.UUID]) -> uuid.UUID:
    org = uuid.uuid4()
    async with store.unit(org) as uow:
        await uow.reference.add_organization("logs")
        workflow = await uow.reference.add_workflow("w")
        for job in ids:
            await uow.jobs.create(workflow_id=workflow.id, id=job)
    return org


async def test_every_operation_on_a_detached_and_on_a_dropped_month(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execstore.logs import archival

    month = months_ago(4, day=12)
    # Three organizations of three jobs each (in id order: the order chunks are cut in);
    # each loses a different one of its jobs while the month is detached.
    orgs: dict[uuid.UUID, list[uuid.UUID]] = {}
    for _ in range(3):
        ids = sorted(uuid.uuid4() for _job in range(3))
        orgs[await org_with_jobs(store, ids)] = ids
    sent: dict[uuid.UUID, list[Any]] = {}
    for org, ids in orgs.items():
        async with store.unit(org) as uow:
            for i, job in enumerate(ids):
                sent[job] = lines(6, start=month, seed=i, tag=f"{i} ")
                await uow.logs.append(job, sent[job])

    async def messages(org: uuid.UUID, job: uuid.UUID) -> list[str]:
        return [e.message for e in await read_all(store, org, job)]

    async def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("stopped before the drop")

    # -- detached, not dropped: its lines are in chunks and still hot ---------------
    with monkeypatch.context() as patched:
        patched.setattr(archival, "_drop_partition", crash)
        with pytest.raises(RuntimeError, match="before the drop"):
            await archive(store)
    assert await detached(store) >= 1
    for org, ids in orgs.items():
        for job in ids:
            assert await hot_count(store, job) == 6
            assert await messages(org, job) == [s.message for s in sent[job]]
    first_org, (*_, kept) = next(iter(orgs.items()))  # the first organization loses its first
    # A late line for that month: a new partition on the spot, read once.
    late = NewLogEntry("late line", timestamp=month.replace(hour=23))
    async with store.unit(first_org) as uow:
        await uow.logs.append(kept, [late])
    assert (await messages(first_org, kept)).count("late line") == 1
    # Deleting a job (first, middle, last of its chunk) takes its lines out of the
    # detached table and of the chunks.
    gone = [ids[position] for position, ids in enumerate(orgs.values())]
    for (org, ids), job in zip(orgs.items(), gone, strict=True):
        async with store.unit(org) as uow:
            await uow.jobs.delete(job)
        assert await hot_count(store, job) == 0
        async with store.unit(org) as uow:
            with pytest.raises(NotFound):
                await uow.logs.for_job(job)
        for other in ids:
            if other != job:
                assert (await messages(org, other))[:6] == [s.message for s in sent[other]]
        [report] = await reconcile(
            store.sessions, store.archives, [LogArchives()], organization_id=org, repair=True
        )
        assert (report.details["lost"], report.details["corrupt"], report.details["orphans"]) == (
            [],
            [],
            [],
        )

    # -- the next run finishes it: dropped, every line in chunks once -------------------
    finished = await archive(store)
    assert (finished.set_aside, finished.details["partitions_kept"]) == ([], [])
    assert await detached(store) == 0
    for org, ids in orgs.items():
        for job in ids:
            if job in gone:
                continue
            assert await hot_count(store, job) == 0
            extra = ["late line"] if job == kept else []
            assert await messages(org, job) == [*[s.message for s in sent[job]], *extra]
        async with store.sessions() as session:
            archived = await session.scalar(
                sa.select(sa.func.sum(m.ExecutionLogArchive.record_count)).where(
                    m.ExecutionLogArchive.organization_id == org
                )
            )
        assert archived == (13 if org == first_org else 12)

    # -- dropped: a later line for that month gets a partition again -----------------
    later = NewLogEntry("later line", timestamp=month.replace(hour=23, minute=30))
    async with store.unit(first_org) as uow:
        await uow.logs.append(kept, [later])
    assert await hot_count(store, kept) == 1
    again = await archive(store)
    assert (again.set_aside, again.details["partitions_kept"]) == ([], [])
    assert await hot_count(store, kept) == 0
    assert (await messages(first_org, kept))[-2:] == ["late line", "later line"]
