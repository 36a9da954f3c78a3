"""Audit windows at their exact values, with segments that span weeks.

``tests/clock/test_audit_windows.py`` holds the hot window and retention a microsecond
either side of one record, and the checkpoint interval. Here the records of a segment
span weeks, so a decision that reads a segment's first record where the promise names
its newest (or the reverse) goes the other way:

- archival (``EXECSTORE_AUDIT_HOT_DAYS``) at a year edge: a record exactly at the
  cut-off stays hot; a segment never holds two UTC months, not even the same month of
  two years, and at most ``segment_records`` records (50,000 unless told);
- ``query`` and ``export``: ``since`` inclusive, ``until`` exclusive, to the
  microsecond, over an archived segment that starts before ``since`` (or ends after
  ``until``) and over hot records alike; a page holds 1 to 1,000 records;
- retention: a segment whose newest record is younger than the retention stays,
  however old its first; on 29 February's sixth anniversary (1 March) it stays until
  the instant, and goes a microsecond later, with a tombstone; a segment whose chain no
  longer verifies is set aside, never deleted.
"""

from __future__ import annotations

import datetime as dt
import gzip
import inspect
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.audit import archive_audit, verify_audit
from execstore.audit.archival import SEGMENT_RECORDS
from execstore.clock import ManualClock
from execstore.config import AUDIT_RETENTION_FLOOR_DAYS
from execstore.errors import InvalidArgument
from execstore.operations import apply_retention
from execstore.schema.audit import PhiAuditArchive
from support.timeline import TICK, new_org, utc

HOT_DAYS = 90


def _access(i: int, patient: str = "MRN-0042") -> dict[str, Any]:
    return {
        "action": "view",
        "resource_type": "claim",
        "resource_id": f"clm_{i:04d}",
        "patient_ref": patient,
        "details": {"note": f"record {i}"},
    }


async def _record_at(
    store: Any, clock: ManualClock, org: uuid.UUID, times: list[dt.datetime]
) -> None:
    for i, at in enumerate(times):
        clock.set(at)
        async with store.unit(org) as uow:
            await uow.audit.record(_access(i))


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


async def _segments(store: Any, org: uuid.UUID) -> list[tuple[int, int, dt.datetime, dt.datetime]]:
    async with store.sessions() as session:
        rows = await session.execute(
            sa.select(
                PhiAuditArchive.first_seq,
                PhiAuditArchive.last_seq,
                PhiAuditArchive.start_date,
                PhiAuditArchive.end_date,
            )
            .where(PhiAuditArchive.organization_id == org)
            .order_by(PhiAuditArchive.first_seq)
        )
        return [(f, last, _aware(s), _aware(e)) for f, last, s, e in rows]


async def _keys(store: Any, org: uuid.UUID) -> list[str]:
    async with store.sessions() as session:
        rows = await session.scalars(
            sa.select(PhiAuditArchive.blob_key)
            .where(PhiAuditArchive.organization_id == org)
            .order_by(PhiAuditArchive.first_seq)
        )
        return list(rows.all())


async def _archive(store: Any, clock: ManualClock, org: uuid.UUID, **options: Any) -> Any:
    report = await archive_audit(
        store.sessions,
        store.archives,
        hot_days=options.pop("hot_days", HOT_DAYS),
        organization_id=org,
        clock=clock,
        **options,
    )
    assert report.set_aside == []
    return report


async def _retain(store: Any, clock: ManualClock, org: uuid.UUID, **options: Any) -> Any:
    return await apply_retention(
        store.sessions,
        store.archives,
        "audit",
        days=options.pop("retention_days", AUDIT_RETENTION_FLOOR_DAYS),
        organization_id=org,
        clock=clock,
        **options,
    )


async def test_archival_at_a_year_edge_with_a_segment_spanning_weeks(store_at: Any) -> None:
    new_year = utc(2035, 1, 1)
    last = new_year - TICK
    times = [utc(2034, 12, 5, 8), utc(2034, 12, 20, 8), last, new_year, utc(2035, 1, 3)]
    clock = ManualClock(utc(2034, 12, 1))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        await _record_at(store, clock, org, times)

        clock.set(new_year + dt.timedelta(days=HOT_DAYS) - TICK)  # cut-off: the last instant
        moved = await _archive(store, clock, org)
        assert (moved.counts["segments"], moved.counts["records"]) == (1, 2)
        assert await _segments(store, org) == [(1, 2, times[0], times[1])]

        clock.advance(TICK)  # cut-off: the new year; its first instant stays hot
        moved = await _archive(store, clock, org)
        assert (moved.counts["segments"], moved.counts["records"]) == (1, 1)
        assert await _segments(store, org) == [(1, 2, times[0], times[1]), (3, 3, last, last)]
        assert all(f"/{org}/2034/12/segments/" in key for key in await _keys(store, org))
        async with store.unit(org) as uow:
            page = await uow.audit.query()
        assert [(r.seq, r.created_at) for r in page.items] == list(enumerate(times, start=1))
        assert not (
            await verify_audit(store.sessions, store.archives, organization_id=org)
        ).needs_attention


async def test_a_segment_never_holds_two_months_not_even_the_same_month_of_two_years(
    store_at: Any,
) -> None:
    times = [
        utc(2035, 1, 31, 23, 59, 59, 999_999),
        utc(2035, 2, 1),
        utc(2035, 2, 20),
        utc(2036, 2, 10),  # February again, a year later, nothing in between
        utc(2036, 2, 29, 23, 59, 59, 999_999),
        utc(2036, 3, 1),
    ]
    clock = ManualClock(utc(2035, 1, 1))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        await _record_at(store, clock, org, times)
        clock.set(utc(2040, 1, 1))
        moved = await _archive(store, clock, org)
        assert (moved.counts["segments"], moved.counts["records"]) == (4, 6)
        assert await _segments(store, org) == [
            (1, 1, times[0], times[0]),
            (2, 3, times[1], times[2]),
            (4, 5, times[3], times[4]),
            (6, 6, times[5], times[5]),
        ]
        months = ["2035/01", "2035/02", "2036/02", "2036/03"]
        keys = await _keys(store, org)
        assert all(
            f"/{org}/{month}/segments/" in key for key, month in zip(keys, months, strict=True)
        )


async def test_a_segment_holds_at_most_segment_records(store_at: Any) -> None:
    clock = ManualClock(utc(2035, 6, 1))
    async with store_at(clock) as store:
        sizes = {}
        for count in (2, 3, 4, 7):
            org, _ = await new_org(store)
            async with store.unit(org) as uow:
                await uow.audit.record_many([_access(i) for i in range(count)])
            sizes[count] = org
        clock.set(utc(2035, 12, 1))
        for org in sizes.values():
            await _archive(store, clock, org, segment_records=3)
        spans = {
            count: [(f, last) for f, last, *_ in await _segments(store, org)]
            for count, org in sizes.items()
        }
        assert spans == {
            2: [(1, 2)],
            3: [(1, 3)],
            4: [(1, 3), (4, 4)],
            7: [(1, 3), (4, 6), (7, 7)],
        }


def test_fifty_thousand_records_a_segment_unless_told() -> None:
    from execstore.cli.archive import audit_command

    assert SEGMENT_RECORDS == 50_000
    default = inspect.signature(archive_audit).parameters["segment_records"].default
    assert default == SEGMENT_RECORDS
    assert inspect.signature(audit_command).parameters["segment_records"].default == 50_000


async def _windowed(store: Any, org: uuid.UUID, **window: Any) -> tuple[list[int], list[int]]:
    """The seqs ``query`` and ``export`` return for one window."""
    async with store.unit(org) as uow:
        queried = [r.seq for r in (await uow.audit.query(**window)).items]
        exported = [json.loads(line)["seq"] async for line in uow.audit.export(**window)]
    return queried, exported


async def test_since_is_inclusive_and_until_exclusive_over_archived_and_hot_records(
    store_at: Any,
) -> None:
    new_year = utc(2035, 1, 1)
    last = new_year - TICK
    mid = utc(2034, 12, 20, 8)
    times = [utc(2034, 12, 5, 8), mid, last, new_year, utc(2035, 1, 3)]
    clock = ManualClock(utc(2034, 12, 1))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        await _record_at(store, clock, org, times)
        clock.set(new_year + dt.timedelta(days=HOT_DAYS))
        await _archive(store, clock, org)
        # One archived segment, 5 December to the year's last instant; two hot records.
        assert await _segments(store, org) == [(1, 3, times[0], last)]
        cases = [
            ({"since": mid}, [2, 3, 4, 5]),  # the segment began before `since`
            ({"since": mid + TICK}, [3, 4, 5]),
            ({"until": mid}, [1]),  # the segment ends after `until`
            ({"until": mid + TICK}, [1, 2]),
            ({"since": mid, "until": mid + TICK}, [2]),
            ({"since": mid, "until": mid}, []),
            ({"since": last}, [3, 4, 5]),
            ({"until": last}, [1, 2]),
            ({"since": new_year}, [4, 5]),  # hot records, at the microsecond
            ({"since": new_year + TICK}, [5]),
            ({"until": new_year}, [1, 2, 3]),
            ({"until": new_year + TICK}, [1, 2, 3, 4]),
            ({"since": last, "until": new_year + TICK}, [3, 4]),
        ]
        for window, seqs in cases:
            assert await _windowed(store, org, **window) == (seqs, seqs), window


async def test_a_page_holds_one_to_a_thousand_records(store_at: Any) -> None:
    clock = ManualClock(utc(2035, 7, 1))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        async with store.unit(org) as uow:
            await uow.audit.record_many([_access(i) for i in range(3)])
            assert [r.seq for r in (await uow.audit.query(limit=1)).items] == [1]
            page = await uow.audit.query(limit=2)
            assert (len(page.items), page.next_cursor is not None) == (2, True)
            rest = await uow.audit.query(limit=2, cursor=page.next_cursor)
            assert ([r.seq for r in rest.items], rest.next_cursor) == ([3], None)
            exact = await uow.audit.query(limit=3)
            assert (len(exact.items), exact.next_cursor) == (3, None)
            assert len((await uow.audit.query(limit=1000)).items) == 3
            for bad in (0, 1001):
                with pytest.raises(InvalidArgument, match="limit"):
                    await uow.audit.query(limit=bad)


async def test_retention_on_the_sixth_anniversary_of_a_leap_day(store_at: Any) -> None:
    # 29 February 2036's sixth anniversary is 1 March 2042: 2,192 days later. An older
    # segment (January) is due all along, so the organization is always considered.
    january = utc(2036, 1, 10, 12)
    newest = utc(2036, 2, 29, 12)
    middle = utc(2036, 2, 15, 12)
    times = [january, utc(2036, 2, 3, 12), middle, newest]
    clock = ManualClock(utc(2036, 1, 1))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        await _record_at(store, clock, org, times)
        clock.set(utc(2036, 3, 1) + dt.timedelta(days=HOT_DAYS))
        await _archive(store, clock, org)
        assert await _segments(store, org) == [(1, 1, january, january), (2, 4, times[1], newest)]
        old_key, key = await _keys(store, org)

        # February's first records are past six years; its newest is not: only January.
        clock.set(middle + dt.timedelta(days=AUDIT_RETENTION_FLOOR_DAYS))
        dry = await _retain(store, clock, org, dry_run=True)
        assert (dry.counts["archives"], dry.counts["records"], dry.details["tombstones"]) == (
            1,
            1,
            [],
        )
        assert await store.blobs.exists(old_key)  # a dry run deletes nothing

        clock.set(utc(2042, 3, 1, 12))  # exactly 2,192 days after February's newest
        assert newest + dt.timedelta(days=AUDIT_RETENTION_FLOOR_DAYS) == clock.now()
        first = await _retain(store, clock, org)
        assert (first.counts["archives"], first.counts["records"], first.set_aside) == (1, 1, [])
        assert await _segments(store, org) == [(2, 4, times[1], newest)]
        assert not await store.blobs.exists(old_key)
        assert await store.blobs.exists(key)

        clock.advance(TICK)
        done = await _retain(store, clock, org)
        assert (done.counts["archives"], done.counts["records"], done.set_aside) == (1, 3, [])
        assert await _segments(store, org) == []
        assert not await store.blobs.exists(key)
        tombstones = first.details["tombstones"] + done.details["tombstones"]
        assert [f"/{org}/2036/01/retention/" in t for t in tombstones] == [True, False]
        assert f"/{org}/2036/02/retention/" in tombstones[1]
        record = json.loads(gzip.decompress(await store.blobs.get(tombstones[1])))
        assert (record["first_seq"], record["last_seq"], record["segment_key"]) == (2, 4, key)
        assert record["retention_days"] == AUDIT_RETENTION_FLOOR_DAYS
        assert not (
            await verify_audit(store.sessions, store.archives, organization_id=org)
        ).needs_attention


async def test_a_segment_that_no_longer_verifies_is_set_aside_not_deleted(store_at: Any) -> None:
    times = [utc(2018, 5, 2), utc(2018, 5, 9), utc(2018, 6, 3)]
    clock = ManualClock(utc(2018, 5, 1))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        await _record_at(store, clock, org, times)
        clock.set(utc(2018, 12, 1))
        await _archive(store, clock, org)
        assert [(f, last) for f, last, *_ in await _segments(store, org)] == [(1, 2), (3, 3)]
        keys = await _keys(store, org)
        async with store.sessions() as session, session.begin():
            # The end hash the pointer row holds no longer matches the segment's chain.
            await session.execute(
                sa.update(PhiAuditArchive)
                .where(PhiAuditArchive.organization_id == org, PhiAuditArchive.first_seq == 3)
                .values(end_hash=bytes(32))
            )
        clock.set(utc(2026, 1, 1))  # both are past six years
        report = await _retain(store, clock, org)
        assert (report.counts["archives"], len(report.details["tombstones"])) == (1, 1)
        assert [s.key for s in report.set_aside] == [keys[1]]
        assert "does not verify" in report.set_aside[0].reason
        assert [(f, last) for f, last, *_ in await _segments(store, org)] == [(3, 3)]
        assert await store.blobs.exists(keys[1])
        assert not await store.blobs.exists(keys[0])


async def test_a_page_is_50_records_unless_told(store_at: Any) -> None:
    clock = ManualClock(utc(2035, 7, 2))
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        async with store.unit(org) as uow:
            await uow.audit.record_many([_access(i) for i in range(51)])
            first = await uow.audit.query()
            rest = await uow.audit.query(cursor=first.next_cursor)
        assert (len(first.items), first.next_cursor is not None) == (50, True)
        assert ([r.seq for r in rest.items], rest.next_cursor) == ([51], None)
