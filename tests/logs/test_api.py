"""uow.logs on PostgreSQL and SQLite: append, read in order, filters, tenancy, bad input."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.errors import (
    InvalidArgument,
    InvalidCursor,
    InvalidLogEntry,
    InvalidLogQuery,
    InvalidRetention,
    NotFound,
)
from execstore.logs import NewLogEntry
from execstore.metadata.listing import list_cursor
from execstore.schema.enums import LogLevel
from execstore.textlimits import TRUNCATION_MARKER
from support.timeline import new_jobs
from support.waiting import wait_until

from .conftest import lines, read_all


async def test_lines_come_back_in_order_with_every_field(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    sent = lines(23)
    async with store.unit(org) as uow:
        assert await uow.logs.append(job, sent[:10]) == 10
        assert await uow.logs.append(job, sent[10:]) == 13
    got = await read_all(store, org, job, limit=7)
    assert [e.message for e in got] == [e.message for e in sent]
    for entry, line in zip(got, sent, strict=True):
        assert entry.job_id == job
        assert entry.timestamp == line.timestamp
        assert entry.level == line.level
        assert (entry.step_index, entry.step_name) == (line.step_index, line.step_name)
        assert entry.metadata == line.metadata
        assert entry.duration_ms == line.duration_ms
    assert len({e.id for e in got}) == 23


async def test_lines_go_with_their_unit(store: Any, org: uuid.UUID, job: uuid.UUID) -> None:
    """Appended lines commit or roll back with the unit (COPY runs in its transaction)."""
    async with store.unit(org) as uow:  # warms the step and partition caches
        await uow.logs.append(job, lines(3, tag="kept "))

    async def append_then_fail() -> None:
        async with store.unit(org) as uow:
            await uow.logs.append(job, lines(300, tag="gone "))
            raise RuntimeError("the processor crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        await append_then_fail()
    got = await read_all(store, org, job, limit=500)
    assert [e.message[:5] for e in got] == ["kept "] * 3


async def test_lines_of_the_same_instant_keep_their_append_order(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    now = dt.datetime.now(dt.UTC)
    async with store.unit(org) as uow:
        await uow.logs.append(job, [NewLogEntry(f"same {i}", timestamp=now) for i in range(5)])
        await uow.logs.append(job, [NewLogEntry(f"same {i}", timestamp=now) for i in range(5, 8)])
        await uow.logs.append(job, [{"message": "no timestamp: now"}])
    got = await read_all(store, org, job, limit=3)
    assert [e.message for e in got[:8]] == [f"same {i}" for i in range(8)]
    assert got[-1].message == "no timestamp: now"


async def test_filters_by_level_and_step(store: Any, org: uuid.UUID, job: uuid.UUID) -> None:
    sent = lines(40)
    async with store.unit(org) as uow:
        await uow.logs.append(job, sent)
    warn = await read_all(store, org, job, min_level="warning")
    assert [e.message for e in warn] == [e.message for e in sent if e.level >= LogLevel.WARN]
    assert warn
    picked = await read_all(store, org, job, steps=[1, "Step 6"])
    expected = [e.message for e in sent if e.step_index == 1 or e.step_name == "Step 6"]
    assert [e.message for e in picked] == expected
    assert len(expected) > 5


async def test_tail_returns_the_last_lines_oldest_first(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    sent = lines(30)
    async with store.unit(org) as uow:
        await uow.logs.append(job, list(reversed(sent)))  # arrival order is not time order
        tail = await uow.logs.tail(job, 4)
    assert [e.message for e in tail] == [e.message for e in sent[-4:]]


async def test_another_organizations_job_is_not_found(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    other = uuid.uuid4()
    async with store.unit(other) as uow:
        await uow.reference.add_organization("other")
    async with store.unit(org) as uow:
        await uow.logs.append(job, lines(3))
    async with store.unit(other) as uow:
        with pytest.raises(NotFound):
            await uow.logs.append(job, lines(2, tag="intruder "))
        with pytest.raises(NotFound):
            await uow.logs.for_job(job)
        with pytest.raises(NotFound):
            await uow.logs.tail(job)
    got = await read_all(store, org, job)
    assert len(got) == 3
    assert not any("intruder" in e.message for e in got)


async def test_camel_case_mappings_are_accepted(store: Any, org: uuid.UUID, job: uuid.UUID) -> None:
    async with store.unit(org) as uow:
        await uow.logs.append(
            job,
            [
                {
                    "message": "m",
                    "level": "error",
                    "stepIndex": 4,
                    "stepName": "Submit",
                    "durationMs": 12,
                }
            ],
        )
        [entry] = (await uow.logs.for_job(job)).items
    assert (entry.level, entry.step_index, entry.step_name, entry.duration_ms) == (
        LogLevel.ERROR,
        4,
        "Submit",
        12,
    )


async def test_long_messages_are_fitted_and_nuls_stripped(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    async with store.unit(org) as uow:
        await uow.logs.append(
            job,
            [
                NewLogEntry("é" * 9000),
                NewLogEntry("a\x00b", step_name="st\x00ep", metadata={"k\x00": ["v\x00", 1]}),
            ],
        )
    long, nul = await read_all(store, org, job)
    assert len(long.message) == 8000
    assert long.message.endswith(TRUNCATION_MARKER)
    assert long.message.startswith("é" * 100)
    assert (nul.message, nul.step_name, nul.metadata) == ("ab", "step", {"k": ["v", 1]})


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            NewLogEntry("x", metadata={"when": dt.datetime(2026, 1, 1)}),
            "metadata cannot be encoded",
        ),
        (NewLogEntry("x", metadata={"n": float("nan")}), "metadata cannot be encoded"),
        (NewLogEntry("x", level="chatty"), "unknown level"),
        (NewLogEntry("x", step_index=2**40), "out of range"),
        ({"message": None}, "message must be text"),
        ({"message": "x", "timestamp": "yesterday"}, "timestamp must be a datetime"),
        (NewLogEntry("lone \ud800 surrogate"), "message holds a lone surrogate"),
        (NewLogEntry("é\udfff"), "message holds a lone surrogate at position 1"),
        (NewLogEntry("x", step_name="step \ud800"), "step_name holds a lone surrogate"),
        (NewLogEntry("x", metadata={"k": "v\ud800"}), "metadata cannot be encoded"),
        (NewLogEntry("x", metadata={"k\udc00": 1}), "metadata cannot be encoded"),
        (NewLogEntry("x", metadata={"k": ["é", "\ud83d"]}), "metadata cannot be encoded"),
    ],
)
async def test_a_bad_entry_refuses_the_whole_batch(
    store: Any, org: uuid.UUID, job: uuid.UUID, bad: Any, reason: str
) -> None:
    async with store.unit(org) as uow:
        with pytest.raises(InvalidLogEntry, match=reason) as caught:
            await uow.logs.append(job, [*lines(3), bad, *lines(2)])
        assert caught.value.index == 3
        assert "entry 3" in str(caught.value)
        # The unit stays usable: nothing was sent to the database.
        await uow.logs.append(job, lines(1, tag="after "))
    got = await read_all(store, org, job)
    assert [e.message.split(":")[0] for e in got] == ["after line 0"]


async def test_a_bad_entry_late_in_a_large_batch_refuses_all_of_it(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    # The bad entry comes after 350 good ones: still nothing of the batch stays.
    batch: list[Any] = [*lines(350), NewLogEntry("x", metadata={"bad": object()}), *lines(49)]
    async with store.unit(org) as uow:
        with pytest.raises(InvalidLogEntry, match="entry 350: metadata cannot be encoded"):
            await uow.logs.append(job, batch)
        assert await uow.logs.append(job, lines(300, tag="ok ")) == 300
    got = await read_all(store, org, job, limit=500)
    assert len(got) == 300
    assert all(e.message.startswith("ok ") for e in got)


@pytest.mark.parametrize(
    "bad",
    [NewLogEntry("x \ud800"), NewLogEntry("x", metadata={"k": "\udfff"})],
    ids=["message", "metadata"],
)
async def test_a_lone_surrogate_late_in_a_large_batch_refuses_all_of_it(
    store: Any, org: uuid.UUID, job: uuid.UUID, bad: Any
) -> None:
    # Pipelined on PostgreSQL: earlier chunks were already sent when entry 350 is checked.
    async with store.unit(org) as uow:
        with pytest.raises(InvalidLogEntry, match="entry 350"):
            await uow.logs.append(job, [*lines(350), bad, *lines(49)])
        assert await uow.logs.append(job, [NewLogEntry("ünïcode ✓ 😀", metadata={"é": "😀"})]) == 1
    [kept] = await read_all(store, org, job)
    assert (kept.message, kept.metadata) == ("ünïcode ✓ 😀", {"é": "😀"})


async def test_metadata_refused_once_is_accepted_once_fixed(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    """A refused encoding leaves nothing behind: the same dict, fixed, goes in."""
    metadata: dict[str, Any] = {"attempt": {"at": object()}}
    async with store.unit(org) as uow:
        with pytest.raises(InvalidLogEntry, match="metadata cannot be encoded"):
            await uow.logs.append(job, [NewLogEntry("x", metadata=metadata)])
        metadata["attempt"]["at"] = 3
        assert await uow.logs.append(job, [NewLogEntry("x", metadata=metadata)]) == 1
    got = await read_all(store, org, job)
    assert [e.metadata for e in got] == [{"attempt": {"at": 3}}]


async def test_a_foreign_cursor_limit_level_or_step_is_refused(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    async with store.unit(org) as uow:
        metadata_cursor = list_cursor(dt.datetime(2026, 1, 1, tzinfo=dt.UTC), uuid.uuid4())
        for cursor in ("page-2", "v1.1.1", "v1.99999999999999999999999.1", metadata_cursor):
            with pytest.raises(InvalidCursor):
                await uow.logs.for_job(job, cursor=cursor)
        for limit in (0, 1001, True, "5"):
            with pytest.raises(InvalidArgument, match="limit"):
                await uow.logs.for_job(job, limit=limit)
            with pytest.raises(InvalidArgument, match="n must"):
                await uow.logs.tail(job, limit)
        with pytest.raises(InvalidLogQuery):
            await uow.logs.for_job(job, min_level="chatty")
        for steps in (5, "step", [1.5], [None], (s for s in [None])):
            with pytest.raises(InvalidArgument, match="steps"):
                await uow.logs.for_job(job, steps=steps)


async def test_retention_is_stored_per_organization(store: Any, org: uuid.UUID) -> None:
    other = uuid.uuid4()
    async with store.unit(other) as uow:
        await uow.reference.add_organization("other")
    async with store.unit(org) as uow:
        default = await uow.logs.retention()
        assert (default.retention_days, default.is_default) == (365, True)
        with pytest.raises(InvalidRetention, match="shorter than the hot window of 30 days"):
            await uow.logs.set_retention(29)
        changed = await uow.logs.set_retention(90)
        assert (changed.retention_days, changed.is_default) == (90, False)
    async with store.unit(other) as uow:
        assert (await uow.logs.retention()).is_default
    async with store.unit(org) as uow:
        assert (await uow.logs.retention()).retention_days == 90
        assert (await uow.logs.set_retention(None)).is_default


async def test_jobs_of_one_workflow_share_step_catalog_entries(store: Any, org: uuid.UUID) -> None:
    first, second = await new_jobs(store, org, 2)
    async with store.unit(org) as uow:
        await uow.logs.append(first, [NewLogEntry("a", step_index=1, step_name="Open")])
        await uow.logs.append(second, [NewLogEntry("b", step_index=1, step_name="Open")])
        await uow.logs.append(second, [NewLogEntry("c", step_index=1, step_name=None)])
        await uow.logs.append(second, [NewLogEntry("d", step_index=1, step_name=None)])
        from sqlalchemy import func, select

        from execstore.schema.models import ExecutionLogEntry

        ids = (
            await uow.session.execute(
                select(func.count(func.distinct(ExecutionLogEntry.step_id))).where(
                    ExecutionLogEntry.job_id.in_([first, second])
                )
            )
        ).scalar()
    assert ids == 2


_WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity "
    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_job_deleted_while_lines_are_appended_leaves_no_orphan_lines(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    """The append holds the job FOR KEY SHARE: the deletion waits, then deletes its lines."""
    import asyncio

    from .conftest import hot_count

    appending = store.unit(org)
    uow = await appending.__aenter__()
    try:
        await uow.logs.append(job, lines(4))

        async def delete() -> None:
            async with store.unit(org) as other:
                await other.jobs.delete(job)

        async def blocked_or_done() -> bool:
            async with store.engine.connect() as conn:
                waiting = await conn.scalar(sa.text(_WAITING_ON_A_LOCK))
            return deleting.done() or bool(waiting)

        deleting = asyncio.create_task(delete())
        await wait_until(blocked_or_done, "the deletion waiting on a lock (or finishing)")
        assert not deleting.done()  # waits for the appending unit
    finally:
        await appending.__aexit__(None, None, None)
    await deleting
    assert await hot_count(store, job) == 0


async def test_a_bad_entry_in_the_last_chunk_names_its_place_and_undoes_the_rest(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    # On PostgreSQL a 1,000-line batch goes in four COPYs while it is validated: the
    # first three are sent by the time entry 999 is found bad, and are rolled back.
    batch: list[Any] = [*lines(999), NewLogEntry("x", metadata={"when": dt.date(2026, 1, 1)})]
    async with store.unit(org) as uow:
        await uow.logs.append(job, lines(2, tag="kept "))
        with pytest.raises(InvalidLogEntry, match="entry 999: metadata cannot be encoded"):
            await uow.logs.append(job, batch)
        assert await uow.logs.append(job, lines(600, tag="ok ")) == 600
    got = await read_all(store, org, job, limit=1000)
    assert len(got) == 602
    assert all(e.message.startswith(("ok ", "kept ")) for e in got)
