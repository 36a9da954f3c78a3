"""uow.audit: record, query, export; durability across rollback; tenancy; bad input."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.audit import PhiAccess, verify_audit
from execstore.audit.format import chain_step, genesis, split_stored_line
from execstore.errors import InvalidArgument, InvalidAuditRecord, NotFound

from .conftest import ACTOR, access, hot_rows


async def test_record_then_query_returns_every_field(store: Any, org: uuid.UUID) -> None:
    job_ids = []
    async with store.unit(org) as uow:
        wf = await uow.reference.add_workflow("claims")
        job_ids.append((await uow.jobs.create(workflow_id=wf.id)).id)
    async with store.unit(org) as uow:
        receipt = await uow.audit.record(
            access(1, job_id=job_ids[0], details={"b": [1, 2.5, None], "a": {"z": "é\n"}})
        )
        assert receipt.seq == 1
        page = await uow.audit.query()
    [record] = page.items
    assert record.seq == 1
    assert record.id == receipt.id
    assert record.organization_id == org
    assert record.actor_id == ACTOR
    assert (record.action, record.resource_type, record.resource_id) == (
        "view",
        "claim",
        "clm_000001",
    )
    assert record.patient_ref == "MRN-0001"
    assert record.job_id == job_ids[0]
    assert record.purpose == "payment"
    assert record.source_ip == "10.20.30.40"
    assert record.user_agent.startswith("Mozilla/5.0")
    assert record.details == {"a": {"z": "é\n"}, "b": [1, 2.5, None]}
    assert record.created_at.tzinfo is not None
    assert page.next_cursor is None


async def test_a_rolled_back_unit_keeps_its_audit_records(store: Any, org: uuid.UUID) -> None:
    async def fail_after_recording() -> None:
        async with store.unit(org) as uow:
            await uow.audit.record(access(1))  # before the unit writes: committed at once
            await uow.reference.add_workflow("rolled back")
            await uow.audit.record_many([access(2), access(3)])  # after it wrote: at its end
            raise RuntimeError("the unit fails after recording")

    with pytest.raises(RuntimeError):
        await fail_after_recording()
    async with store.unit(org) as uow:
        page = await uow.audit.query()
        assert [r.seq for r in page.items] == [1, 2, 3]
    async with store.engine.connect() as conn:
        workflows = await conn.execute(
            sa.text("SELECT count(*) FROM workflows WHERE name = 'rolled back'")
        )
        assert workflows.scalar() == 0  # the unit's own write is gone
    report = await verify_audit(store.sessions, store.archives, organization_id=org)
    assert not report.needs_attention, report.set_aside


async def test_query_filters_and_pages(store: Any, org: uuid.UUID) -> None:
    other_actor = uuid.uuid4()
    async with store.unit(org) as uow:
        await uow.audit.record_many(
            [access(i, actor_id=other_actor if i % 4 == 0 else ACTOR) for i in range(30)]
        )
        by_patient = await uow.audit.query(patient_ref="MRN-0003")
        assert [r.seq for r in by_patient.items] == [4, 11, 18, 25]
        by_actor = await uow.audit.query(actor_id=other_actor)
        assert [r.seq for r in by_actor.items] == [1, 5, 9, 13, 17, 21, 25, 29]
        exports = await uow.audit.query(action="export")
        assert all(r.action == "export" for r in exports.items)
        assert len(exports.items) == 10
        first = await uow.audit.query(limit=12)
        second = await uow.audit.query(limit=12, cursor=first.next_cursor)
        third = await uow.audit.query(limit=12, cursor=second.next_cursor)
        seqs = [r.seq for p in (first, second, third) for r in p.items]
        assert seqs == list(range(1, 31))
        assert third.next_cursor is None
        future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        assert (await uow.audit.query(since=future)).items == []
        assert len((await uow.audit.query(until=future, limit=100)).items) == 30
        assert (await uow.audit.query(patient_ref="nobody")).items == []


async def test_export_is_ndjson_that_verifies_outside_execstore(store: Any, org: uuid.UUID) -> None:
    async with store.unit(org) as uow:
        await uow.audit.record_many([access(i) for i in range(5)])
        lines = [line async for line in uow.audit.export()]
    assert len(lines) == 5
    digest = genesis(org)
    for line in lines:
        assert line.endswith(b"\n")
        json.loads(line)  # plain JSON per line
        hashed, link = split_stored_line(line.rstrip(b"\n"))  # type: ignore[misc]
        digest = chain_step(digest, hashed)
        assert digest[:8] == link


async def test_records_are_scoped_to_their_organization(store: Any, org: uuid.UUID) -> None:
    other = uuid.uuid4()
    async with store.unit(org) as uow:
        await uow.audit.record(access(1))
    async with store.unit(other) as uow:
        await uow.audit.record(access(2))
        page = await uow.audit.query()
        assert [r.organization_id for r in page.items] == [other]
        assert [r.seq for r in page.items] == [1]  # its own chain
        assert (await uow.audit.query(patient_ref="MRN-0001")).items == []
        exported = [line async for line in uow.audit.export()]
        assert len(exported) == 1
        assert str(other).encode() in exported[0]
        assert str(org).encode() not in exported[0]


async def test_naming_another_organizations_job_is_not_found(store: Any, org: uuid.UUID) -> None:
    other = uuid.uuid4()
    async with store.unit(other) as uow:
        await uow.reference.add_organization("other")
        wf = await uow.reference.add_workflow("theirs")
        theirs = (await uow.jobs.create(workflow_id=wf.id)).id
    async with store.unit(org) as uow:
        with pytest.raises(NotFound, match=str(theirs)):
            await uow.audit.record_many([access(1), access(2, job_id=theirs)])
        # A job id nobody has (deleted long ago, or not committed yet) is fine.
        await uow.audit.record(access(3, job_id=uuid.uuid4()))
        assert [r.seq for r in (await uow.audit.query()).items] == [1]


async def test_bad_input_is_refused_with_nothing_written(store: Any, org: uuid.UUID) -> None:
    async with store.unit(org) as uow:
        with pytest.raises(InvalidAuditRecord, match="details"):
            await uow.audit.record(access(1, details={"x": float("nan")}))
        with pytest.raises(InvalidAuditRecord, match="details"):
            await uow.audit.record(access(1, details={"x": "\ud800"}))
        with pytest.raises(ValueError, match="action"):
            PhiAccess(action="", resource_type="claim")
        # A field of the wrong kind is named, and the batch before it is not written.
        with pytest.raises(InvalidAuditRecord, match=r"audit record 1: source_ip: .*IPv4"):
            await uow.audit.record_many(
                [access(1), {"action": "view", "resource_type": "claim", "source_ip": "999.1.1.1"}]
            )
        with pytest.raises(InvalidArgument, match="limit"):
            await uow.audit.query(limit=0)
        with pytest.raises(InvalidAuditRecord, match="audit record 0: actor_id"):
            await uow.audit.record({"action": "view", "resource_type": "claim", "actor_id": 7})
        long_agent = await uow.audit.record(access(2, user_agent="A" * 5000))
        assert long_agent.seq == 1
        [record] = (await uow.audit.query()).items
        assert len(record.user_agent) == 1000
        assert record.user_agent.endswith("…[truncated]")
        nul = await uow.audit.record(access(3, resource_id="a\x00b", details={"k\x00": "v\x00"}))
        assert nul.seq == 2
        after_first = (await uow.audit.query(limit=1)).next_cursor
        second = (await uow.audit.query(cursor=after_first)).items[0]
        assert second.resource_id == "ab"
        assert second.details == {"k": "v"}


async def test_rows_are_compact(store: Any, org: uuid.UUID) -> None:
    async with store.unit(org) as uow:
        await uow.audit.record_many([access(i) for i in range(3)])
    rows = await hot_rows(store, org)
    assert {row.dictionary for row in rows} <= {-2, -1, 0}
    assert all(isinstance(row.actor, int) for row in rows)  # catalog ids, not text
