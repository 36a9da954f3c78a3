"""Log windows at their exact values, with lines and chunks that span them.

``tests/clock/test_log_windows.py`` holds the hot window and retention a microsecond
either side of one line. Here the lines of one chunk span weeks, so a decision that
reads a chunk's first line where the promise names its newest (or the reverse) goes the
other way:

- hot window (``EXECSTORE_LOG_HOT_DAYS``) at a year edge: a line exactly at the cut-off
  stays; PostgreSQL moves a month once its partition ends at or before the cut-off;
- a chunk's pointer row names its first and its newest line; paging a job through a
  chunk that spans the page boundary (and two lines of the same instant split over two
  pages) loses nothing;
- retention: a chunk whose newest line is younger than the retention stays, however old
  its first line; exactly at the retention it stays, a microsecond later it goes; the
  window counts days, so a year holding 29 February is 366 of them;
- a stored retention equal to the hot window applies; one day shorter is set aside;
  ``set_retention`` refuses one day under the hot window and over 36,500 days;
- chunk rows (``EXECSTORE_LOG_ARCHIVE_CHUNK_ROWS``): a chunk closes at a job boundary
  once it holds that many lines, a single job is cut at four times that, a month never
  shares a chunk with the next.
"""

from __future__ import annotations

import datetime as dt
import types
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.clock import ManualClock
from execstore.errors import InvalidRetention
from execstore.logs import NewLogEntry, archive_logs
from execstore.logs.chunks import ChunkBuilder
from execstore.logs.repository import MAX_RETENTION_DAYS
from execstore.operations import apply_retention
from execstore.schema import models as m
from execstore.schema.enums import LogLevel
from support.timeline import TICK, new_job, new_org, utc

from .conftest import hot_count

HOT_DAYS = 30
DAY = dt.timedelta(days=1)


async def _hot_messages(store: Any, job: uuid.UUID) -> list[str]:
    from execstore.logs.repository import detached_tables

    found: list[tuple[dt.datetime, int, str]] = []
    async with store.sessions() as session:
        for table in [m.ExecutionLogEntry.__table__, *await detached_tables(session)]:
            rows = await session.execute(
                sa.select(table.c.timestamp, table.c.id, table.c.message).where(
                    table.c.job_id == job
                )
            )
            found += [
                (t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t, i, s) for t, i, s in rows
            ]
    return [message for *_, message in sorted(found)]


async def _chunks(store: Any, org: uuid.UUID) -> list[m.ExecutionLogArchive]:
    async with store.sessions() as session:
        rows = await session.scalars(
            sa.select(m.ExecutionLogArchive)
            .where(m.ExecutionLogArchive.organization_id == org)
            .order_by(m.ExecutionLogArchive.start_date)
        )
        return list(rows.all())


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _span(chunk: m.ExecutionLogArchive) -> tuple[dt.datetime, dt.datetime, int]:
    return _aware(chunk.start_date), _aware(chunk.end_date), chunk.record_count


async def _archive(store: Any, clock: ManualClock, **options: Any) -> Any:
    return await archive_logs(
        store.engine, store.sessions, store.archives, hot_days=HOT_DAYS, clock=clock, **options
    )


async def _retain(store: Any, clock: ManualClock, org: uuid.UUID, **options: Any) -> Any:
    return await apply_retention(
        store.sessions,
        store.archives,
        "logs",
        days=options.pop("default_days", 365),
        hot_days=HOT_DAYS,
        organization_id=org,
        clock=clock,
        **options,
    )


async def _page_by_page(store: Any, org: uuid.UUID, job: uuid.UUID, limit: int) -> list[str]:
    messages: list[str] = []
    after = None
    async with store.unit(org) as uow:
        while True:
            page = await uow.logs.for_job(job, cursor=after, limit=limit)
            messages += [e.message for e in page.items]
            if page.next_cursor is None:
                return messages
            after = page.next_cursor


async def test_the_hot_window_and_retention_at_a_year_edge_with_a_chunk_spanning_weeks(
    store_at: Any,
) -> None:
    new_year = utc(2033, 1, 1)
    last = new_year - TICK
    lines = [
        ("dec 3", utc(2032, 12, 3, 10)),
        ("dec 17", utc(2032, 12, 17, 10)),
        ("last instant a", last),
        ("last instant b", last),  # the same instant: the id orders them
        ("new year", new_year),
        ("jan 20", utc(2033, 1, 20)),
    ]
    everything = [name for name, _ in lines]
    clock = ManualClock(utc(2032, 12, 1))
    async with store_at(clock) as store:
        sqlite = store.engine.dialect.name == "sqlite"
        org, workflow = await new_org(store)
        job = await new_job(store, org, workflow)
        async with store.unit(org) as uow:
            await uow.logs.append(job, [NewLogEntry(name, timestamp=at) for name, at in lines])

        # The cut-off is the year's last instant: lines at it and after stay hot.
        clock.set(new_year + dt.timedelta(days=HOT_DAYS) - TICK)
        await _archive(store, clock)
        assert await _hot_messages(store, job) == (everything[2:] if sqlite else everything)

        # A microsecond later the cut-off is the new year: December goes, January stays.
        clock.advance(TICK)
        await _archive(store, clock)
        assert await _hot_messages(store, job) == everything[4:]
        spans = [_span(c) for c in await _chunks(store, org)]
        if sqlite:  # the first run had moved the two older lines on their own
            assert spans == [(utc(2032, 12, 3, 10), utc(2032, 12, 17, 10), 2), (last, last, 2)]
        else:
            assert spans == [(utc(2032, 12, 3, 10), last, 4)]
        # Page by page through the chunk, the two lines of one instant on two pages.
        assert await _page_by_page(store, org, job, limit=1) == everything
        assert await _page_by_page(store, org, job, limit=3) == everything
        async with store.unit(org) as uow:
            assert [e.message for e in await uow.logs.tail(job, 3)] == everything[3:]

        # Retention 365 days, cut-off on 20 December: the chunk ending on the year's last
        # instant stays, though its first line is past the cut-off.
        clock.set(utc(2032, 12, 20) + dt.timedelta(days=365))
        early = await _retain(store, clock, org)
        kept = [_span(c) for c in await _chunks(store, org)]
        if sqlite:
            assert (early.counts["archives"], early.counts["records"]) == (1, 2)
            assert kept == [(last, last, 2)]
        else:
            assert (early.counts["archives"], kept) == (0, spans)
        clock.set(last + dt.timedelta(days=365))  # exactly 365 days after its newest line
        assert (await _retain(store, clock, org)).counts["archives"] == 0
        clock.advance(TICK)
        gone = await _retain(store, clock, org)
        assert (gone.counts["archives"], gone.counts["records"]) == (1, 2 if sqlite else 4)
        assert await _chunks(store, org) == []
        assert await _page_by_page(store, org, job, limit=2) == everything[4:]


async def test_retention_counts_days_across_a_leap_day(store_at: Any) -> None:
    # 2036 is a leap year: 365 days after 20 February 2036 is 19 February 2037.
    newest = utc(2036, 2, 20, 12)
    clock = ManualClock(utc(2036, 1, 1))
    async with store_at(clock) as store:
        org, workflow = await new_org(store)
        job = await new_job(store, org, workflow)
        async with store.unit(org) as uow:
            await uow.logs.append(
                job,
                [
                    NewLogEntry("first", timestamp=utc(2036, 2, 2)),
                    NewLogEntry("newest", timestamp=newest),
                ],
            )
        clock.set(utc(2036, 4, 1))
        await _archive(store, clock)
        [chunk] = await _chunks(store, org)
        assert _span(chunk) == (utc(2036, 2, 2), newest, 2)
        clock.set(utc(2037, 2, 19, 12))  # 365 days: one day short of a calendar year
        assert (await _retain(store, clock, org)).counts["archives"] == 0
        clock.advance(TICK)
        assert (await _retain(store, clock, org)).counts["archives"] == 1
        assert not await store.blobs.exists(chunk.blob_key)


async def test_a_stored_retention_equal_to_the_hot_window_applies_one_day_less_is_set_aside(
    store_at: Any,
) -> None:
    clock = ManualClock(utc(2034, 5, 1))
    async with store_at(clock) as store:
        made = []
        for days in (HOT_DAYS - 1, HOT_DAYS):
            org, workflow = await new_org(store)
            job = await new_job(store, org, workflow)
            async with store.unit(org) as uow:
                await uow.logs.append(job, [NewLogEntry("one", timestamp=utc(2034, 5, 2))])
            async with store.sessions() as session, session.begin():
                # Stored while the hot window was shorter (set_retention refuses it now).
                session.add(
                    m.ExecutionLogRetention(
                        organization_id=org, retention_days=days, updated_at=clock.now()
                    )
                )
            made.append((org, job))
        clock.set(utc(2034, 8, 1))
        await _archive(store, clock)
        clock.set(utc(2034, 12, 1))  # months past both retentions
        (short_org, _), (equal_org, equal_job) = made
        short = await _retain(store, clock, short_org)
        assert [s.key for s in short.set_aside] == [f"organization {short_org}"]
        assert short.counts["archives"] == 0
        assert len(await _chunks(store, short_org)) == 1
        equal = await _retain(store, clock, equal_org)
        assert (equal.set_aside, equal.counts["archives"]) == ([], 1)
        assert await _chunks(store, equal_org) == []
        assert await hot_count(store, equal_job) == 0


async def test_set_retention_refuses_one_day_under_the_hot_window_and_over_the_maximum(
    store_at: Any,
) -> None:
    clock = ManualClock(utc(2034, 6, 1))
    async with store_at(clock, log_hot_days=45) as store:
        org, _ = await new_org(store)
        async with store.unit(org) as uow:
            with pytest.raises(InvalidRetention, match="hot window of 45 days"):
                await uow.logs.set_retention(44)
            for days in (45, 46, MAX_RETENTION_DAYS):
                assert (await uow.logs.set_retention(days)).retention_days == days
            with pytest.raises(InvalidRetention, match=str(MAX_RETENTION_DAYS)):
                await uow.logs.set_retention(MAX_RETENTION_DAYS + 1)
        async with store.unit(org) as uow:
            assert (await uow.logs.retention()).retention_days == MAX_RETENTION_DAYS
    assert MAX_RETENTION_DAYS == 36_500


# -- chunk rows: the chunk builder on its own (no database) -------------------------


def _row(job: uuid.UUID, id_: int, at: dt.datetime) -> Any:
    return types.SimpleNamespace(
        job_id=job,
        id=id_,
        timestamp=at,
        level=int(LogLevel.INFO),
        step_index=0,
        name=None,
        message=f"line {id_}",
        duration_ms=None,
        metadata=None,
    )


def _jobs(*counts: int) -> list[tuple[uuid.UUID, int]]:
    ids = sorted(uuid.uuid4() for _ in counts)
    return list(zip(ids, counts, strict=True))


def _sizes(chunk_rows: int, *counts: int) -> list[int]:
    builder = ChunkBuilder(uuid.uuid4(), chunk_rows)
    sizes, next_id = [], 1
    start = utc(2035, 3, 1)
    for job, count in _jobs(*counts):
        for _ in range(count):
            done = builder.add(_row(job, next_id, start + next_id * dt.timedelta(minutes=1)))
            next_id += 1
            if done is not None:
                sizes.append(len(done))
    return sizes + [len(c) for c in builder.finish()]


def test_a_chunk_closes_at_the_first_job_boundary_once_it_holds_chunk_rows_lines() -> None:
    assert _sizes(3, 3, 1) == [3, 1]  # full at the boundary: the next job starts a chunk
    assert _sizes(3, 2, 1) == [3]  # one line short: the next job joins
    assert _sizes(3, 2, 2) == [4]  # a job is not cut below four chunks' worth
    assert _sizes(3, 3, 1, 2) == [3, 3]
    assert _sizes(1, 1, 1, 1) == [1, 1, 1]


def test_a_single_job_is_cut_at_four_times_chunk_rows() -> None:
    assert _sizes(3, 12) == [12]
    assert _sizes(3, 13) == [12, 1]
    assert _sizes(3, 11, 1) == [11, 1]  # the next job starts a chunk, whatever the size
    assert _sizes(2000, 8000) == [8000]
    assert _sizes(2000, 8001) == [8000, 1]


def test_a_month_edge_starts_a_chunk_whatever_its_size() -> None:
    builder = ChunkBuilder(uuid.uuid4(), 1000)
    job = uuid.uuid4()
    for id_, at in enumerate([utc(2035, 12, 31, 23, 59, 59, 999_999), utc(2036, 1, 1)], 1):
        assert builder.add(_row(job, id_, at)) is None
    chunks = list(builder.finish())
    assert [(c.month, c.start, c.end, len(c)) for c in chunks] == [
        (
            utc(2035, 12, 1),
            utc(2035, 12, 31, 23, 59, 59, 999_999),
            utc(2035, 12, 31, 23, 59, 59, 999_999),
            1,
        ),
        (utc(2036, 1, 1), utc(2036, 1, 1), utc(2036, 1, 1), 1),
    ]


async def test_chunk_rows_cut_an_organizations_month_in_the_database(store_at: Any) -> None:
    clock = ManualClock(utc(2035, 4, 1))
    async with store_at(clock) as store:
        org, workflow = await new_org(store)
        jobs = sorted([await new_job(store, org, workflow) for _ in range(3)])
        counts = dict(zip(jobs, (3, 1, 2), strict=True))
        async with store.unit(org) as uow:
            for n, job in enumerate(jobs):
                await uow.logs.append(
                    job,
                    [
                        NewLogEntry(f"{n}.{i}", timestamp=utc(2035, 4, 2 + 9 * i, n))
                        for i in range(counts[job])
                    ],
                )
        clock.set(utc(2035, 7, 1))
        await _archive(store, clock, chunk_rows=3)
        chunks = await _chunks(store, org)
        by_first = sorted(chunks, key=lambda c: (c.first_job, c.start_date))
        assert [(c.first_job, c.last_job, c.record_count) for c in by_first] == [
            (jobs[0], jobs[0], 3),
            (jobs[1], jobs[2], 3),
        ]
        # Each pointer row spans its own lines' times: weeks, not one instant.
        assert [(_aware(c.start_date), _aware(c.end_date)) for c in by_first] == [
            (utc(2035, 4, 2, 0), utc(2035, 4, 20, 0)),
            (utc(2035, 4, 2, 1), utc(2035, 4, 11, 2)),
        ]


async def test_a_message_of_8000_characters_is_kept_one_more_is_fitted(store_at: Any) -> None:
    from execstore.textlimits import TRUNCATION_MARKER

    clock = ManualClock(utc(2035, 8, 1))
    exact = "m" * 7999 + "é"
    fitted = exact[: 8000 - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
    async with store_at(clock) as store:
        org, workflow = await new_org(store)
        job = await new_job(store, org, workflow)
        small = [NewLogEntry(exact), {"message": exact + "x"}]
        # More than 250 lines: PostgreSQL validates them a chunk at a time, another path.
        large = [NewLogEntry(exact) if i % 2 else {"message": exact + "x"} for i in range(300)]
        async with store.unit(org) as uow:
            await uow.logs.append(job, small)
            await uow.logs.append(job, large)
            entries = (await uow.logs.for_job(job, limit=1000)).items
        assert [e.message for e in entries] == [exact, fitted] + [
            exact if i % 2 else fitted for i in range(300)
        ]


def _month(year: int, month: int) -> str:
    return f"execution_log_partitioned_p{year}_{month:02d}"


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_partitions_ahead_cross_a_year_edge(store_at: Any) -> None:
    from execstore.logs.maintenance import maintain_log_partitions

    clock = ManualClock(utc(2044, 11, 30, 23, 59, 59, 999_999))
    async with store_at(clock) as store:
        ahead = store.settings.log_months_ahead
        assert ahead == 3
        report = await maintain_log_partitions(store.engine, months_ahead=ahead, clock=clock)
        assert report.details["created"] == [
            _month(2044, 11),
            _month(2044, 12),
            _month(2045, 1),
            _month(2045, 2),
        ]
        clock.advance(TICK)  # 1 December: March comes into view, nothing else
        report = await maintain_log_partitions(store.engine, months_ahead=ahead, clock=clock)
        assert report.details["created"] == [_month(2045, 3)]


async def test_a_page_is_50_lines_unless_told(store_at: Any) -> None:
    clock = ManualClock(utc(2035, 9, 1))
    async with store_at(clock) as store:
        org, workflow = await new_org(store)
        exact, over = await new_job(store, org, workflow), await new_job(store, org, workflow)
        async with store.unit(org) as uow:
            for job, count in ((exact, 50), (over, 51)):
                await uow.logs.append(
                    job,
                    [NewLogEntry(f"{i}", timestamp=clock.now() + i * TICK) for i in range(count)],
                )
            full = await uow.logs.for_job(exact)
            first = await uow.logs.for_job(over)
            rest = await uow.logs.for_job(over, cursor=first.next_cursor)
        assert (len(full.items), full.next_cursor) == (50, None)
        assert (len(first.items), first.next_cursor is not None) == (50, True)
        assert [e.message for e in rest.items] == ["50"]
