"""``audit verify`` with one side of each comparison missing, and checkpoint claims (both
backends).

README, "PHI audit log": records are covered by their links and by checkpoint blobs
written outside the database; a checkpoint indexed in the database whose blob is gone is
reported; the chain head must agree with the records; a gap in ``seq`` is fine only
where a retention tombstone covers it and a checkpoint sits at its end. Each case below
takes one thing away (or adds one), verifies, and puts it back.

Checkpoint claims: a write claims the next checkpoint once the last claim is older than
the interval; when writing the claimed checkpoint fails the record stays committed and
``execstore audit checkpoint`` writes it later.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.audit import (
    archive_audit,
    checkpoint_organizations,
    verify_audit,
)
from execstore.audit.checkpoints import read_evidence, tombstone_key
from execstore.clock import ManualClock
from execstore.operations import apply_retention
from execstore.schema.audit import PhiAuditChainHead, PhiAuditCheckpoint
from execstore.store import ExecStore

from .conftest import access

START = dt.datetime(2031, 1, 10, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
async def chain(settings: Any) -> AsyncIterator[tuple[Any, uuid.UUID]]:
    """An organization six years on: records 1-3 deleted by retention (a tombstone and a
    checkpoint at 3), 4-5 in an archived segment, 6-8 hot, the newest without checkpoint."""
    clock = ManualClock(START)
    async with ExecStore.open(settings, clock=clock) as store:
        org = uuid.uuid4()
        async with store.unit(org) as uow:
            await uow.reference.add_organization("audited")

        async def record(n: int) -> None:
            async with store.unit(org) as uow:
                for i in range(n):
                    await uow.audit.record(access(i))

        await record(3)  # January 2031
        clock.advance(days=31)
        await record(2)  # February
        clock.advance(days=100)
        await record(1)
        archived = await archive_audit(
            store.sessions, store.archives, hot_days=90, organization_id=org, clock=clock
        )
        assert (archived.counts["segments"], archived.counts["records"]) == (2, 5)
        clock.set(dt.datetime(2037, 1, 20, tzinfo=dt.UTC))  # six years after January only
        retention = await apply_retention(
            store.sessions, store.archives, "audit", days=2192, organization_id=org, clock=clock
        )
        assert (retention.counts["archives"], retention.counts["records"]) == (1, 3)
        await record(2)  # 7 claims a checkpoint, 8 comes right after it: none
        yield store, org


async def verified(store: Any, org: uuid.UUID) -> Any:
    store.archives.cache.clear()
    [result] = (await verify_audit(store.sessions, store.archives, organization_id=org)).details[
        "organizations"
    ]
    return result


async def problem(store: Any, org: uuid.UUID) -> tuple[str, int | None, str]:
    found = (await verified(store, org)).problem
    assert found is not None
    return found.kind, found.seq, found.message


async def test_each_missing_side_is_named_and_nothing_else_is(chain: Any) -> None:
    store, org = chain
    evidence = await read_evidence(store.archives, org)
    assert sorted(evidence.checkpoints) == [1, 3, 4, 5, 6, 7]  # claimed: 1, 4, 6, 7
    assert [(first, last) for first, last, _ in evidence.tombstones] == [(1, 3)]
    # Everything in place: a tombstone without its segment, a segment without a
    # tombstone, records after the newest checkpoint and a head without one of its own.
    ok = await verified(store, org)
    assert ok.ok, ok.problem
    assert (ok.first_seq, ok.last_seq, ok.archived_records, ok.newest_checkpoint_seq) == (
        4,
        8,
        2,
        7,
    )

    checkpoint_rows = sa.select(PhiAuditCheckpoint).where(PhiAuditCheckpoint.organization_id == org)

    async def without_blob(key: str, *, index_too: bool = False) -> tuple[str, int | None, str]:
        """What verify says with the blob at ``key`` (and its index row) gone; then back."""
        payload = await store.blobs.get(key)
        async with store.sessions() as session, session.begin():
            row = await session.scalar(checkpoint_rows.where(PhiAuditCheckpoint.blob_key == key))
            saved = None
            if index_too and row is not None:
                saved = {
                    c.key: getattr(row, c.key) for c in sa.inspect(PhiAuditCheckpoint).column_attrs
                }
                await session.delete(row)
        await store.blobs.delete(key)
        try:
            return await problem(store, org)
        finally:
            await store.blobs.put(key, payload)
            if saved is not None:
                async with store.sessions() as session, session.begin():
                    session.add(PhiAuditCheckpoint(**saved))

    # An indexed checkpoint whose blob is gone.
    kind, seq, message = await without_blob(evidence.checkpoints[6][1])
    assert (kind, seq) == ("checkpoint_missing", 6)
    assert "indexed but its blob is gone" in message
    # A tombstone without the checkpoint at its end, and a gap without a tombstone.
    assert (await without_blob(evidence.checkpoints[3][1]))[:2] == ("checkpoint_missing", 3)
    assert (await without_blob(evidence.checkpoints[3][1], index_too=True))[:2] == ("missing", 1)
    kind, seq, message = await without_blob(evidence.tombstones[0][2])
    assert (kind, seq) == ("missing", 1)
    assert "no retention tombstone covers them" in message
    assert (await verified(store, org)).ok

    # A checkpoint blob without its index row (a crash between the two): still evidence.
    async with store.sessions() as session, session.begin():
        await session.execute(
            sa.delete(PhiAuditCheckpoint).where(
                PhiAuditCheckpoint.organization_id == org, PhiAuditCheckpoint.seq == 5
            )
        )
    assert (await verified(store, org)).ok

    # Checkpoints without the chain head they were taken from.
    async with store.sessions() as session, session.begin():
        head = await session.get(PhiAuditChainHead, org)
        assert head is not None
        saved = {c.key: getattr(head, c.key) for c in sa.inspect(PhiAuditChainHead).column_attrs}
        await session.delete(head)
    kind, seq, message = await problem(store, org)
    assert (kind, seq) == ("missing", 8)
    assert "chain head row is missing" in message
    async with store.sessions() as session, session.begin():
        session.add(PhiAuditChainHead(**saved))
    assert (await verified(store, org)).ok

    # A tombstone beside the segment it names (retention stopped before the delete).
    extra = tombstone_key(store.archives, org, 4, 5, dt.datetime(2031, 2, 10, tzinfo=dt.UTC))
    await store.archives.store_document(extra, {"first_seq": 4, "last_seq": 5})
    assert (await verified(store, org)).ok
    await store.blobs.delete(extra)
    assert (await verified(store, org)).ok


async def test_a_claimed_checkpoint_that_failed_is_written_by_the_checkpoint_job(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from execstore.audit import repository

    clock = ManualClock(START)
    async with ExecStore.open(settings, clock=clock) as store:
        org = uuid.uuid4()

        async def heads() -> tuple[int, int, Any]:
            async with store.sessions() as session:
                head = await session.get(PhiAuditChainHead, org)
                assert head is not None
                return head.seq, head.checkpoint_seq, head.checkpoint_claimed_at

        async def broken(*args: Any, **kwargs: Any) -> str:
            raise OSError("blob store down")

        with monkeypatch.context() as patched:
            patched.setattr(repository, "write_checkpoint", broken)
            async with store.unit(org) as uow:
                receipt = await uow.audit.record(access(1))
        seq, checkpointed, claimed = await heads()
        assert (receipt.seq, seq, checkpointed) == (1, 1, 0)  # committed, claimed, not written
        assert claimed is not None
        assert (await verified(store, org)).ok
        # Claimed already: the next write within the interval does not claim again.
        async with store.unit(org) as uow:
            await uow.audit.record(access(2))
        assert (await heads())[1:] == (0, claimed)
        written = await checkpoint_organizations(
            store.sessions, store.archives, organization_id=org, clock=clock
        )
        assert (len(written.details["keys"]), written.counts["up_to_date"]) == (1, 0)
        assert (await heads())[1] == 2
        again = await checkpoint_organizations(
            store.sessions, store.archives, organization_id=org, clock=clock
        )
        assert (again.details["keys"], again.counts["up_to_date"]) == ([], 1)
        result = await verified(store, org)
        assert (result.ok, result.newest_checkpoint_seq, result.checkpoints_matched) == (True, 2, 1)
