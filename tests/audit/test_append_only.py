"""The table refuses UPDATE and DELETE; writers keep one gapless chain under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.audit import verify_audit
from execstore.audit.repository import AuditRepository
from execstore.errors import DatabaseError

from .conftest import access, hot_rows, org_param


async def _sql(store: Any, sql: str, org: uuid.UUID) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(sa.text(sql), {"org": org_param(store, org)})


async def test_update_and_delete_are_refused(store: Any, org: uuid.UUID) -> None:
    async with store.unit(org) as uow:
        await uow.audit.record_many([access(i) for i in range(3)])
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        await _sql(
            store, "UPDATE phi_audit_log SET resource_id = 'x' WHERE organization_id = :org", org
        )
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        await _sql(store, "DELETE FROM phi_audit_log WHERE organization_id = :org AND seq = 2", org)
    assert [r.seq for r in await hot_rows(store, org)] == [1, 2, 3]
    assert not hasattr(AuditRepository, "update")
    assert not hasattr(AuditRepository, "delete")


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_truncate_is_refused_on_postgresql(store: Any, org: uuid.UUID) -> None:
    async with store.unit(org) as uow:
        await uow.audit.record(access(1))
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        await _sql(store, "TRUNCATE phi_audit_log", org)
    assert len(await hot_rows(store, org)) == 1


async def _writer(store: Any, org: uuid.UUID, writer: int, count: int, batch: int) -> list[int]:
    seqs: list[int] = []
    for start in range(0, count, batch):
        async with store.unit(org) as uow:
            receipts = await uow.audit.record_many(
                [access(i, resource_id=f"w{writer}-{i}") for i in range(start, start + batch)]
            )
            seqs.extend(r.seq for r in receipts)
    return seqs


@pytest.mark.parametrize("batch", [1, 5])
async def test_concurrent_writers_keep_one_gapless_chain(
    store: Any, org: uuid.UUID, batch: int
) -> None:
    writers, count = 8, 10
    results = await asyncio.gather(*(_writer(store, org, w, count, batch) for w in range(writers)))
    everything = sorted(seq for seqs in results for seq in seqs)
    assert everything == list(range(1, writers * count + 1))  # no fork, no gap, no reuse
    for seqs in results:
        assert seqs == sorted(seqs)  # each writer's records in its own order
    rows = await hot_rows(store, org)
    for writer in range(writers):
        mine = [r.resource_id for r in rows if r.resource_id.startswith(f"w{writer}-")]
        assert mine == [f"w{writer}-{i}" for i in range(count)]
    report = await verify_audit(store.sessions, store.archives, organization_id=org)
    assert not report.needs_attention, report.set_aside


async def test_a_unit_that_holds_the_write_lock_still_records(store: Any, org: uuid.UUID) -> None:
    """SQLite: the unit's own write lock must not deadlock its audit write (it waits)."""
    async with store.unit(org) as uow:
        await uow.reference.add_workflow("holds the lock")
        receipt = await uow.audit.record(access(1))
        if store.engine.dialect.name == "sqlite":
            assert receipt.seq is None  # written when the unit ends
        else:
            assert receipt.seq == 1
    async with store.unit(org) as uow:
        assert [r.seq for r in (await uow.audit.query()).items] == [1]


async def test_a_failed_write_leaves_no_gap(
    store: Any, org: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    import execstore.audit.writer as writer

    async with store.unit(org) as uow:
        await uow.audit.record(access(1))
    original = writer.chain_step
    calls = 0

    def crash(previous: bytes, line: bytes) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 2:  # the head is locked and the first record hashed: then it fails
            raise DatabaseError("connection lost in the middle of the append")
        return original(previous, line)

    monkeypatch.setattr(writer, "chain_step", crash)
    async with store.unit(org) as uow:
        with pytest.raises(DatabaseError):
            await uow.audit.record_many([access(2), access(3)])
    monkeypatch.setattr(writer, "chain_step", original)
    async with store.unit(org) as uow:
        assert (await uow.audit.record(access(4))).seq == 2
    report = await verify_audit(store.sessions, store.archives, organization_id=org)
    assert not report.needs_attention, report.set_aside


async def test_a_batch_larger_than_one_insert_statement_is_one_chain(
    store: Any, org: uuid.UUID
) -> None:
    """PostgreSQL sends any batch as one statement; SQLite splits it into several."""
    count = 1005
    async with store.unit(org) as uow:
        await uow.audit.record(access(0))
        receipts = await uow.audit.record_many(
            [access(i, resource_id=f"r{i}", details=None) for i in range(1, count)]
        )
    if receipts[0].seq is not None:
        assert [r.seq for r in receipts] == list(range(2, count + 1))
    rows = await hot_rows(store, org)
    assert [r.seq for r in rows] == list(range(1, count + 1))
    assert [r.resource_id for r in rows[1:]] == [f"r{i}" for i in range(1, count)]
    report = await verify_audit(store.sessions, store.archives, organization_id=org)
    assert not report.needs_attention, report.set_aside
    assert report.details["organizations"][0].records == count
