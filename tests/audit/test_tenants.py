"""The audit log's guards and reads with a second organization in the way.

Every organization's chain starts at seq 1, so two organizations hold records with the
same seq numbers, at the same instants, about the same patient. A guard or read that
forgets the organization passes with one tenant; here organization B is always there:

- the append-only trigger lets a DELETE through only for a record *its own
  organization's* archive pointer covers, ``first_seq`` and ``last_seq`` included: B's
  pointer over the same seq range does not make A's records deletable (both backends);
- ``query``, ``export`` and ``verify`` of A see A's records only, hot and archived,
  while B's have the same seqs, times and patient, and B's chain is broken;
- archival and retention run for one organization leave the other's records, even
  when they are just as old.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.audit import archive_audit, verify_audit
from execstore.clock import ManualClock
from execstore.config import AUDIT_RETENTION_FLOOR_DAYS, Codec
from execstore.operations import apply_retention
from execstore.schema.audit import PhiAuditArchive
from support.timeline import new_org, utc

from .conftest import execute, hot_rows, org_param

HOT_DAYS = 90
PATIENT = "MRN-0042"


def _access(i: int) -> dict[str, Any]:
    return {
        "action": "view",
        "resource_type": "claim",
        "resource_id": f"clm_{i:04d}",
        "patient_ref": PATIENT,
        "purpose": "payment",
        "details": {"note": f"record {i}"},
    }


async def _twins(store: Any, clock: ManualClock, times: list[dt.datetime]) -> list[uuid.UUID]:
    """Organizations A and B, each with one record at each of ``times`` (same seqs)."""
    orgs = [(await new_org(store, name))[0] for name in ("A", "B")]
    for i, at in enumerate(times):
        clock.set(at)
        for org in orgs:
            async with store.unit(org) as uow:
                await uow.audit.record(_access(i))
    return orgs


async def _pointer(store: Any, org: uuid.UUID, first: int, last: int, at: dt.datetime) -> None:
    """A pointer row of ``org`` covering ``first..last`` (its blob is beside the point)."""
    async with store.sessions() as session, session.begin():
        session.add(
            PhiAuditArchive(
                id=uuid.uuid4(),
                organization_id=org,
                first_seq=first,
                last_seq=last,
                start_date=at,
                end_date=at,
                end_hash=bytes(32),
                blob_key=f"audit/{org}/{at:%Y/%m}/segments/{first:016d}-{last:016d}.ndjson.gz",
                sha256=bytes(32),
                raw_size=1,
                stored_size=1,
                record_count=last - first + 1,
                codec=Codec.GZIP,
                format_version=1,
                archived_at=at,
            )
        )


async def _delete(store: Any, org: uuid.UUID, seq: int) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.text("DELETE FROM phi_audit_log WHERE organization_id = :org AND seq = :seq"),
            {"org": org_param(store, org), "seq": seq},
        )


async def test_a_delete_is_let_through_only_for_records_their_own_organizations_pointer_covers(
    store_at: Any,
) -> None:
    at = utc(2039, 2, 1)
    clock = ManualClock(at)
    async with store_at(clock) as store:
        a, b = await _twins(store, clock, [at + dt.timedelta(hours=h) for h in range(6)])
        # B's pointer covers seqs 1..6: every one of A's records, were the organization ignored.
        await _pointer(store, b, 1, 6, at)
        for seq in range(1, 7):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                await _delete(store, a, seq)
        # A's own pointer covers 2..4: exactly those go, the ends included.
        await _pointer(store, a, 2, 4, at)
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with store.engine.begin() as conn:  # covered or not, never an UPDATE
                await conn.execute(
                    sa.text(
                        "UPDATE phi_audit_log SET resource_id = 'x' "
                        "WHERE organization_id = :org AND seq = 3"
                    ),
                    {"org": org_param(store, a)},
                )
        for seq in (1, 5):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                await _delete(store, a, seq)
        for seq in (2, 4, 3):
            await _delete(store, a, seq)
        assert [r.seq for r in await hot_rows(store, a)] == [1, 5, 6]
        assert [r.seq for r in await hot_rows(store, b)] == [1, 2, 3, 4, 5, 6]


async def test_reads_and_verification_see_one_organization_among_twins(store_at: Any) -> None:
    start = utc(2039, 4, 1)
    times = [start + dt.timedelta(days=d) for d in (0, 7, 14, 21, 28)]
    clock = ManualClock(start)
    async with store_at(clock) as store:
        a, b = await _twins(store, clock, times)
        # Archived up to different points: A's records 1..2, B's 1..3 (the same seqs
        # archived in both, B's cursor further on).
        for org, cutoff in ((a, times[2]), (b, times[3])):
            clock.set(cutoff + dt.timedelta(days=HOT_DAYS))
            await archive_audit(
                store.sessions, store.archives, hot_days=HOT_DAYS, organization_id=org, clock=clock
            )
        async with store.sessions() as session:
            archived = dict(
                (
                    await session.execute(
                        sa.select(PhiAuditArchive.organization_id, PhiAuditArchive.last_seq).where(
                            PhiAuditArchive.organization_id.in_([a, b])
                        )
                    )
                ).all()
            )
        assert archived == {a: 2, b: 3}

        # B's chain is broken: an edited hot record.
        await execute(
            store,
            "UPDATE phi_audit_log SET resource_id = 'edited' "
            "WHERE organization_id = :org AND seq = 4",
            org=b,
        )
        for org in (a, b):
            async with store.unit(org) as uow:
                everything = (await uow.audit.query()).items
                by_patient = (await uow.audit.query(patient_ref=PATIENT)).items
                windowed = (await uow.audit.query(since=times[1], until=times[4])).items
                second = await uow.audit.query(cursor=(await uow.audit.query(limit=2)).next_cursor)
                by_action = (await uow.audit.query(action="view", limit=1000)).items
                lines = [json.loads(line) async for line in uow.audit.export()]
                since = [json.loads(line) async for line in uow.audit.export(since=times[2])]
            for records in (everything, by_patient, by_action):
                assert [(r.organization_id, r.seq, r.created_at) for r in records] == [
                    (org, i, t) for i, t in enumerate(times, 1)
                ]
            assert [(r.organization_id, r.seq) for r in windowed] == [(org, 2), (org, 3), (org, 4)]
            assert [(r.organization_id, r.seq) for r in second.items] == [
                (org, 3),
                (org, 4),
                (org, 5),
            ]
            assert [(x["organization_id"], x["seq"]) for x in lines] == [
                (str(org), i) for i in range(1, 6)
            ]
            assert [x["seq"] for x in since] == [3, 4, 5]
        fine = await verify_audit(store.sessions, store.archives, organization_id=a)
        broken = await verify_audit(store.sessions, store.archives, organization_id=b)
        assert not fine.needs_attention
        assert fine.counts["records"] == 5
        assert [
            (o.organization_id, o.problem.seq) for o in broken.details["organizations"] if o.problem
        ] == [(b, 4)]


async def test_archival_and_retention_for_one_organization_leave_the_others_records(
    store_at: Any,
) -> None:
    start = utc(2016, 3, 1)
    clock = ManualClock(start)
    async with store_at(clock) as store:
        a, b = await _twins(store, clock, [start + dt.timedelta(days=d) for d in (1, 2, 3)])
        clock.set(utc(2016, 9, 1))  # all six records are past the hot window
        moved = await archive_audit(
            store.sessions, store.archives, hot_days=HOT_DAYS, organization_id=a, clock=clock
        )
        assert (moved.counts["organizations"], moved.counts["records"], moved.set_aside) == (
            1,
            3,
            [],
        )
        assert await hot_rows(store, a) == []
        assert [r.seq for r in await hot_rows(store, b)] == [1, 2, 3]  # same seqs, untouched
        moved = await archive_audit(
            store.sessions, store.archives, hot_days=HOT_DAYS, organization_id=b, clock=clock
        )
        assert (moved.counts["records"], moved.set_aside) == (3, [])

        clock.set(utc(2023, 1, 1))  # both organizations' segments are past six years
        gone = await apply_retention(
            store.sessions,
            store.archives,
            "audit",
            days=AUDIT_RETENTION_FLOOR_DAYS,
            organization_id=a,
            clock=clock,
        )
        assert (gone.counts["archives"], gone.counts["records"]) == (1, 3)
        async with store.sessions() as session:
            left = (
                await session.scalars(
                    sa.select(PhiAuditArchive.organization_id).where(
                        PhiAuditArchive.organization_id.in_([a, b])
                    )
                )
            ).all()
        assert left == [b]
        async with store.unit(b) as uow:
            assert [r.seq for r in (await uow.audit.query()).items] == [1, 2, 3]
