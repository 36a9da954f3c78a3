"""Archive pointer rows and blobs, every combination, for every archive kind (both backends).

README, "Archives" and ``execstore.archival.reconcile``: a pointer row whose blob is gone
is *lost* (reported; ``--repair`` marks it and reads fail with ArchiveMissing; marked
again it is *still lost*, not marked twice); if the blob comes back it is *restored*
(reported; ``--repair`` clears the mark and reads work again); a blob whose bytes do not
match its row is *corrupt* (``--verify``; reported, never marked or deleted); a blob
without a row is an *orphan* once older than the grace period (``--repair`` deletes it),
*young* before (left alone). Each kind starts from a database whose logs, audit
records and results are all archived.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from execstore.archival import ArchiveKind, Pointer, reconcile
from execstore.audit import AuditArchives, archive_audit, backfill_audit
from execstore.blob import WRITTEN_AT_METADATA
from execstore.errors import ArchiveMissing
from execstore.logs import LogArchives, archive_logs
from execstore.logs.backfill import backfill_logs
from execstore.results import ResultArchives, backfill_results

from .legacy_world import expected

KINDS: dict[str, ArchiveKind] = {
    "results": ResultArchives(),
    "logs": LogArchives(),
    "audit": AuditArchives(),
}


async def archive_everything(store: Any) -> None:
    clock = store.clock
    assert (await backfill_logs(store.engine, store.sessions, clock=clock)).details["verified"]
    archived = await archive_logs(
        store.engine, store.sessions, store.archives, hot_days=30, clock=clock
    )
    assert archived.counts["lines_archived"]
    await backfill_audit(store.sessions, store.archives, clock=clock)
    audit = await archive_audit(store.sessions, store.archives, hot_days=90, clock=clock)
    assert audit.counts["records"]
    assert (await backfill_results(store.sessions, store.archives, clock=clock)).counts["moved"]


async def read(store: Any, kind: str) -> Any:
    """Everything of the organization a read of ``kind`` returns (ArchiveMissing propagates)."""
    want = expected()
    store.archives.cache.clear()
    async with store.unit(want.org) as uow:
        if kind == "results":
            return [
                (await uow.results.detail(job)).output if await uow.results.find(job) else None
                for job in want.jobs.values()
            ]
        if kind == "logs":
            return [
                [e.message for e in (await uow.logs.for_job(job, limit=100)).items]
                for job in want.jobs.values()
            ]
        return [(r.seq, r.resource_id) for r in (await uow.audit.query(limit=100)).items]


async def pointers(store: Any, kind: str) -> list[Pointer]:
    async with store.sessions() as session:
        found, _ = await KINDS[kind].pointers(
            session, after=None, limit=100, organization_id=expected().org
        )
    return found


async def marked(store: Any, kind: str, key: str) -> bool:
    return next(p.marked_lost for p in await pointers(store, kind) if p.ref.key == key)


async def rec(store: Any, kind: str, **options: Any) -> Any:
    [report] = await reconcile(
        store.sessions,
        store.archives,
        [KINDS[kind]],
        organization_id=expected().org,
        clock=store.clock,
        **options,
    )
    return report


def found_in(report: Any, key: str) -> list[str]:
    """The report's lists that name ``key``."""
    names = ("lost", "still_lost", "restored", "corrupt", "orphans", "young", "pending")
    return [name for name in names if key in report.details[name]]


def orphan_key(kind: str, org: uuid.UUID) -> str:
    other = uuid.uuid4()
    return {
        "results": f"results/{org}/2026/09/{other}/result.json.gz",
        "logs": f"logs/{org}/2026/09/{other}/c123.ndjson.gz",
        # first seq 1 is behind the archive cursor: not a segment a run will claim
        "audit": f"audit/{org}/2026/09/segments/0000000000000001-0000000000000099.ndjson.gz",
    }[kind]


async def test_every_side_of_a_pointer_and_its_blob(legacy_store: Any) -> None:
    await archive_everything(legacy_store)
    for kind in KINDS:
        await walk(legacy_store, kind)


async def walk(store: Any, kind: str) -> None:
    """Both sides; corrupt; lost, marked, still lost, restored, cleared; young, orphan."""
    baseline = await read(store, kind)
    pointer = (await pointers(store, kind))[0]
    key = pointer.ref.key
    payload = await store.blobs.get(key)

    # Both sides, matching: nothing to report (also when every blob is downloaded).
    for options in ({}, {"verify": True, "repair": True}):
        report = await rec(store, kind, **options)
        assert not report.needs_attention, report
        assert (report.counts["marked"], report.counts["deleted"], found_in(report, key)) == (
            0,
            0,
            [],
        )

    # Bytes that do not match the row: corrupt with --verify, never marked or deleted.
    await store.blobs.delete(key)
    await store.blobs.put(key, payload[:-1] + bytes([payload[-1] ^ 1]))
    corrupt = await rec(store, kind, verify=True, repair=True)
    assert (found_in(corrupt, key), corrupt.counts["marked"], corrupt.counts["deleted"]) == (
        ["corrupt"],
        0,
        0,
    )
    assert await store.blobs.exists(key)
    assert not await marked(store, kind, key)
    assert found_in(await rec(store, kind), key) == []  # without --verify it exists: fine
    await store.blobs.delete(key)
    await store.blobs.put(key, payload)

    # Row without blob: lost; reported but unmarked without --repair.
    await store.blobs.delete(key)
    lost = await rec(store, kind)
    assert (found_in(lost, key), lost.counts["marked"]) == (["lost"], 0)
    assert lost.needs_attention
    assert [a.key for a in lost.set_aside] == [key]
    assert not await marked(store, kind, key)
    with pytest.raises(ArchiveMissing):
        await read(store, kind)
    # --repair marks it, once.
    repaired = await rec(store, kind, repair=True)
    assert (found_in(repaired, key), repaired.counts["marked"]) == (["lost"], 1)
    assert await marked(store, kind, key)
    with pytest.raises(ArchiveMissing):
        await read(store, kind)
    again = await rec(store, kind, repair=True)
    assert (found_in(again, key), again.counts["marked"]) == (["still_lost"], 0)
    assert await marked(store, kind, key)

    # The blob comes back: restored; the mark stays until a --repair clears it.
    await store.blobs.put(key, payload)
    back = await rec(store, kind)
    assert found_in(back, key) == ["restored"]
    assert await marked(store, kind, key)
    if kind != "audit":  # results and logs trust the mark and fail without blob I/O
        with pytest.raises(ArchiveMissing):
            await read(store, kind)
    cleared = await rec(store, kind, repair=True)
    assert (found_in(cleared, key), cleared.counts["marked"]) == (["restored"], 0)
    assert not await marked(store, kind, key)
    assert await read(store, kind) == baseline
    assert not (await rec(store, kind)).needs_attention

    # Blob without row: young within the grace period, then an orphan; --repair deletes.
    stray = orphan_key(kind, expected().org)
    now = store.clock.now().isoformat()
    await store.blobs.put(stray, payload, metadata={WRITTEN_AT_METADATA: now})
    young = await rec(store, kind, repair=True)
    assert (found_in(young, stray), young.counts["deleted"]) == (["young"], 0)
    store.clock.advance(dt.timedelta(hours=1, seconds=1))
    orphan = await rec(store, kind)
    assert (found_in(orphan, stray), orphan.counts["deleted"]) == (["orphans"], 0)
    assert [(a.key, a.reason.split(":")[0]) for a in orphan.set_aside] == [(stray, "orphan")]
    assert await store.blobs.exists(stray)
    gone = await rec(store, kind, repair=True)
    assert (found_in(gone, stray), gone.counts["deleted"]) == (["orphans"], 1)
    assert not gone.needs_attention  # removed: nothing left for an operator
    assert not await store.blobs.exists(stray)
    assert await read(store, kind) == baseline
