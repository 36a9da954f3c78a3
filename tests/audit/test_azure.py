"""The audit log on Azure Blob Storage (Azurite): checkpoints, segments, verify, queries."""

from __future__ import annotations

import uuid

import pytest

from execstore.audit import archive_audit, checkpoint_organizations, verify_audit
from execstore.blob import AzureBlobStore
from execstore.store import ExecStore

from .conftest import access, execute

pytestmark = pytest.mark.azurite


@pytest.mark.azurite
async def test_checkpoints_and_segments_on_azurite(azure_store: ExecStore) -> None:
    store = azure_store
    assert isinstance(store.blobs, AzureBlobStore)
    org = uuid.uuid4()
    async with store.unit(org) as uow:
        await uow.audit.record(access(0))
        await uow.audit.record_many([access(i) for i in range(1, 8)])
    await checkpoint_organizations(store.sessions, store.archives, organization_id=org)
    archived = await archive_audit(store.sessions, store.archives, hot_days=0, organization_id=org)
    assert archived.counts["records"] == 8
    async with store.unit(org) as uow:
        await uow.audit.record_many([access(i) for i in range(8, 12)])
        page = await uow.audit.query(patient_ref="MRN-0001", limit=10)
    assert [r.seq for r in page.items] == [2, 9]  # one archived, one hot
    report = await verify_audit(store.sessions, store.archives, organization_id=org)
    assert not report.needs_attention, report.set_aside
    assert report.details["organizations"][0].archived_records == 8
    # An edited hot record after an archived segment is named.
    await execute(
        store,
        "UPDATE phi_audit_log SET resource_id = 'forged' WHERE organization_id = :org AND seq = 10",
        org=org,
    )
    await checkpoint_organizations(store.sessions, store.archives, organization_id=org)
    report = await verify_audit(store.sessions, store.archives, organization_id=org)
    assert report.details["organizations"][0].problem is not None
    assert report.details["organizations"][0].problem.seq == 10
