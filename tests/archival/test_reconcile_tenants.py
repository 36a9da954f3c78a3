"""The reconciler with ``--org``, and its last look before deleting an orphan.

``execstore archive reconcile --org A --repair`` limits both directions to A: organization
B's lost pointer rows (results, log chunks, audit segments) stay unmarked and B's
orphan blobs stay, though they would be marked and deleted were the organization
ignored; a run for B then finds them. An orphan that gains its pointer row between the
listing and the delete (an archival run committing meanwhile) is not deleted.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa

from execstore.archival import reconcile
from execstore.audit import AuditArchives, archive_audit
from execstore.clock import ManualClock
from execstore.logs import LogArchives, NewLogEntry, archive_logs
from execstore.logs.chunks import Chunk, chunk_values
from execstore.logs.format import record_of
from execstore.results import ResultArchives
from execstore.results.format import result_archive_key
from execstore.schema import models as m
from execstore.schema.audit import PhiAuditArchive
from execstore.schema.enums import LogLevel
from support.timeline import new_job, new_org, utc

GRACE = dt.timedelta(hours=1)
KINDS = [ResultArchives(), LogArchives(), AuditArchives()]


async def _organization_with_losses(store: Any, clock: ManualClock) -> tuple[uuid.UUID, list[str]]:
    """An organization whose result, log chunk and audit segment blobs are gone, and which
    has an orphan result blob; its id and the four keys."""
    org, workflow = await new_org(store)
    job = await new_job(store, org, workflow)
    async with store.unit(org) as uow:
        await uow.results.save(job, {"success": True, "stepResults": []})
        await uow.logs.append(job, [NewLogEntry("line", timestamp=clock.now())])
        await uow.audit.record({"action": "view", "resource_type": "claim"})
    orphan = result_archive_key(org, uuid.uuid4(), clock.now(), store.archives.codec)
    await store.archives.write_document(orphan, {"steps": []})
    return org, [orphan]


async def _pointer_keys(store: Any, org: uuid.UUID) -> list[str]:
    async with store.sessions() as session:
        logs = await session.scalars(
            sa.select(m.ExecutionLogArchive.blob_key).where(
                m.ExecutionLogArchive.organization_id == org
            )
        )
        audit = await session.scalars(
            sa.select(PhiAuditArchive.blob_key).where(PhiAuditArchive.organization_id == org)
        )
        return [*logs.all(), *audit.all()]


async def test_a_run_for_one_organization_leaves_the_others_losses_and_orphans(
    store_at: Any,
) -> None:
    start = utc(2038, 7, 1)
    clock = ManualClock(start)
    async with store_at(clock) as store:
        (a, a_orphans), (b, b_orphans) = [
            await _organization_with_losses(store, clock) for _ in range(2)
        ]
        clock.set(utc(2038, 10, 1))
        await archive_logs(store.engine, store.sessions, store.archives, hot_days=30, clock=clock)
        for org in (a, b):
            await archive_audit(
                store.sessions, store.archives, hot_days=30, organization_id=org, clock=clock
            )
        lost: dict[uuid.UUID, set[str]] = {}
        for org in (a, b):
            async with store.sessions() as session:
                job = await session.scalar(sa.select(m.Job.id).where(m.Job.organization_id == org))
                created = await session.scalar(sa.select(m.Job.created_at).where(m.Job.id == job))
            assert job is not None
            assert created is not None
            keys = [
                result_archive_key(org, job, created, store.archives.codec),
                *await _pointer_keys(store, org),
            ]
            assert len(keys) == 3
            for key in keys:
                assert await store.blobs.delete(key)
            lost[org] = set(keys)

        def found(reports: list[Any]) -> tuple[set[str], set[str], int, int]:
            return (
                {key for r in reports for key in r.details["lost"]},
                {key for r in reports for key in r.details["orphans"]},
                sum(r.counts["marked"] for r in reports),
                sum(r.counts["deleted"] for r in reports),
            )

        async def run(org: uuid.UUID) -> Any:
            return await reconcile(
                store.sessions,
                store.archives,
                KINDS,
                organization_id=org,
                repair=True,
                grace=GRACE,
                clock=clock,
            )

        assert found(await run(a)) == (lost[a], set(a_orphans), 3, 1)
        assert await store.blobs.exists(b_orphans[0])  # B's orphan is B's run's to delete
        assert found(await run(b)) == (lost[b], set(b_orphans), 3, 1)  # B's marks were left
        assert not await store.blobs.exists(b_orphans[0])
        again = await run(a)
        assert sum(len(r.details["still_lost"]) for r in again) == 3
        assert sum(len(r.details["lost"]) + len(r.details["orphans"]) for r in again) == 0


class _CommitsMeanwhile(LogArchives):
    """Log archives whose pending check is where an archival run commits the pointer row."""

    def __init__(self, store: Any, values: dict[str, Any]) -> None:
        self.store = store
        self.values = values

    async def pending(self, session: Any, keys: Any) -> set[str]:
        waiting = await super().pending(session, keys)
        if self.values["blob_key"] in keys:
            async with self.store.sessions() as other, other.begin():
                other.add(m.ExecutionLogArchive(**self.values))
        return waiting


async def test_an_orphan_whose_row_commits_meanwhile_is_not_deleted(store_at: Any) -> None:
    start = utc(2038, 11, 1)
    clock = ManualClock(start)
    async with store_at(clock) as store:
        org, workflow = await new_org(store)
        job = await new_job(store, org, workflow)
        chunk = Chunk(org, utc(2038, 9, 1))
        line = record_of(job, 10**9 + 1, utc(2038, 9, 3), LogLevel.INFO, 0, None, "x", None, None)
        chunk.add(job, 10**9 + 1, utc(2038, 9, 3), line)
        key = chunk.key(store.archives)
        stored = await store.archives.store_records(key, chunk.records)
        values = chunk_values(chunk, stored.ref, source_id=None, archived_at=clock.now())
        clock.advance(GRACE * 2)  # an orphan by age: no row names it yet
        [report] = await reconcile(
            store.sessions,
            store.archives,
            [_CommitsMeanwhile(store, values)],
            organization_id=org,
            repair=True,
            grace=GRACE,
            clock=clock,
        )
        assert (report.details["orphans"], report.counts["deleted"]) == ([key], 0)
        assert await store.blobs.exists(key)
        async with store.unit(org) as uow:
            assert [e.id for e in (await uow.logs.for_job(job)).items] == [10**9 + 1]


async def test_the_default_grace_is_one_hour_to_the_microsecond(store_at: Any) -> None:
    import inspect

    from execstore.archival import DEFAULT_GRACE
    from execstore.cli.archive import reconcile_command

    assert dt.timedelta(hours=1) == DEFAULT_GRACE
    assert inspect.signature(reconcile_command).parameters["grace_minutes"].default == 60
    written = utc(2038, 12, 31, 23, 30)
    clock = ManualClock(written)
    async with store_at(clock) as store:
        org, _ = await new_org(store)
        orphan = result_archive_key(org, uuid.uuid4(), written, store.archives.codec)
        await store.archives.write_document(orphan, {"steps": []})

        async def check() -> Any:
            [report] = await reconcile(
                store.sessions,
                store.archives,
                [ResultArchives()],
                organization_id=org,
                repair=True,
                clock=clock,
            )
            return report

        clock.set(written + dt.timedelta(hours=1) - dt.timedelta(microseconds=1))
        assert ((await check()).details["young"], await store.blobs.exists(orphan)) == (
            [orphan],
            True,
        )
        clock.advance(dt.timedelta(microseconds=1))  # the new year: exactly an hour old
        assert ((await check()).counts["deleted"], await store.blobs.exists(orphan)) == (1, False)
