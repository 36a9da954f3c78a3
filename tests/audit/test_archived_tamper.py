"""Tampering with archived segments is found too; checkpoints are never reconciled away."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from execstore.archival import reconcile
from execstore.audit import AuditArchives, archive_audit, verify_audit

from .conftest import access, hot_rows, org_param


async def _archived(store: Any, org: uuid.UUID, count: int = 10) -> Any:
    async with store.unit(org) as uow:
        await uow.audit.record_many([access(i) for i in range(count)])
    report = await archive_audit(store.sessions, store.archives, hot_days=0, organization_id=org)
    assert report.counts["records"] == count
    async with store.engine.connect() as conn:
        return (
            await conn.execute(
                sa.text("SELECT * FROM phi_audit_archives WHERE organization_id = :org"),
                {"org": org_param(store, org)},
            )
        ).one()


async def test_an_edited_archived_record_is_named(store: Any, org: uuid.UUID) -> None:
    pointer = await _archived(store, org)
    from execstore.archival import archive_ref

    lines = (await store.archives.read_bytes(archive_ref(pointer))).split(b"\n")
    records = [json.loads(line) for line in lines if line]
    records[3]["resource_id"] = "clm_forged"  # record 4, its link kept
    forged = await store.archives.write_records(
        pointer.blob_key.replace("segments", "forged"), records
    )
    async with store.engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE phi_audit_archives SET blob_key = :k, sha256 = :s, raw_size = :r, "
                "stored_size = :z WHERE organization_id = :org"
            ),
            {
                "k": forged.key,
                "s": forged.sha256,
                "r": forged.raw_size,
                "z": forged.stored_size,
                "org": org_param(store, org),
            },
        )
    report = await verify_audit(store.sessions, store.archives, organization_id=org)
    [result] = report.details["organizations"]
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind) == (4, "edited")


async def test_a_lost_segment_is_reported_and_checkpoints_are_not_orphans(
    store: Any, org: uuid.UUID
) -> None:
    pointer = await _archived(store, org)
    [before] = await reconcile(
        store.sessions,
        store.archives,
        [AuditArchives()],
        organization_id=org,
        repair=True,
        grace=dt.timedelta(0),
    )
    assert not before.needs_attention, before
    assert before.details["orphans"] == []  # checkpoint blobs are evidence
    assert await store.archives.delete(pointer.blob_key)
    report = await verify_audit(store.sessions, store.archives, organization_id=org)
    assert report.details["organizations"][0].problem.kind == "unreadable"
    [after] = await reconcile(
        store.sessions, store.archives, [AuditArchives()], organization_id=org, repair=True
    )
    assert after.details["lost"] == [pointer.blob_key]
    keys = [info.key async for info in store.blobs.list(f"audit/{org}/")]
    assert any("/checkpoints/" in key for key in keys)


async def test_archival_keeps_hot_rows_when_the_stored_segment_differs(
    store: Any, org: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with store.unit(org) as uow:
        await uow.audit.record_many([access(i) for i in range(5)])
    original = store.archives.read_bytes

    async def corrupted(ref: Any) -> bytes:
        return (await original(ref)).replace(b"clm_000002", b"clm_000009")

    monkeypatch.setattr(store.archives, "read_bytes", corrupted)
    report = await archive_audit(store.sessions, store.archives, hot_days=0, organization_id=org)
    assert [aside.key for aside in report.set_aside] == [str(org)]
    assert "differs" in report.set_aside[0].reason
    monkeypatch.undo()
    assert len(await hot_rows(store, org)) == 5  # nothing hot was deleted
    again = await archive_audit(store.sessions, store.archives, hot_days=0, organization_id=org)
    assert again.counts["records"] == 5
    assert again.set_aside == []
    assert await hot_rows(store, org) == []
