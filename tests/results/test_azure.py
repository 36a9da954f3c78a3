"""Results on Azure Blob Storage (Azurite): save, detail, delete and reconcile."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from execstore.blob import AzureBlobStore
from execstore.results.format import result_archive_key
from execstore.schema import models as m
from execstore.store import ExecStore
from support.timeline import new_jobs

from .conftest import make_output, put_result_document, reconcile, results_of

pytestmark = pytest.mark.azurite


@pytest.mark.azurite
async def test_save_detail_delete_and_reconcile_on_azurite(azure_store: ExecStore) -> None:
    store = azure_store
    assert isinstance(store.blobs, AzureBlobStore)
    org = uuid.uuid4()
    async with store.sessions() as session, session.begin():
        session.add(m.Organization(id=org, name="azure org"))
    kept, deleted, orphaned = await new_jobs(store, org, 3)
    outputs = {job: make_output(org, job) for job in (kept, deleted)}
    async with store.unit(org) as uow:
        for job, output in outputs.items():
            await results_of(uow).save(job, output)
    async with store.unit(org) as uow:
        detail = await results_of(uow).detail(kept)
        shots = await results_of(uow).screenshots(kept)
    assert detail.output == outputs[kept]
    assert [s.url for s in shots] == [s["url"] for s in outputs[kept]["screenshots"]]

    async with store.unit(org) as uow:
        (gone_key,) = await uow.jobs.delete(deleted)
    assert not await store.blobs.exists(gone_key)

    async with store.sessions() as session:
        created = (await session.get(m.Job, orphaned)).created_at
    orphan = result_archive_key(org, orphaned, created, store.archives.codec)
    await put_result_document(store.archives, orphan, {"left": "behind"})
    report = await reconcile(
        store.sessions, store.archives, organization_id=org, repair=True, grace=dt.timedelta(0)
    )
    assert report.details["orphans"] == [orphan]
    assert report.counts["deleted"] == 1
    assert report.details["lost"] == []
    assert report.counts["rows_checked"] == 1
    keys = [info.key async for info in store.blobs.list("results/")]
    assert len(keys) == 1
    assert str(kept) in keys[0]


async def test_archival_with_a_set_aside_job_and_derived_keys_on_azurite(
    azure_store: ExecStore,
) -> None:
    import sqlalchemy as sa

    from execstore.results import backfill_results

    from .conftest import archive_key
    from .test_archival import URLS, make_legacy_jobs

    store = azure_store
    org = uuid.uuid4()
    async with store.unit(org) as uow:
        await uow.reference.add_organization("azure legacy")
    outputs = await make_legacy_jobs(store, org, 4, legacy_rows=1)
    bad = sorted(outputs)[2]
    async with store.sessions() as session, session.begin():
        await session.execute(
            sa.update(m.Job).where(m.Job.id == bad).values(result={"deep": _nested(101)})
        )
    report = await backfill_results(
        store.sessions, store.archives, organization_id=org, screenshot_urls=URLS
    )
    assert report.counts["moved"] == 3
    assert [item.key for item in report.set_aside] == [str(bad)]
    keys = sorted([info.key async for info in store.blobs.list(f"results/{org}/")])
    assert keys == sorted([await archive_key(store, job) for job in outputs if job != bad])
    check = await reconcile(store.sessions, store.archives, organization_id=org)
    assert not check.needs_attention
    assert check.counts["rows_checked"] == 3
    async with store.unit(org) as uow:
        for job in outputs:
            if job != bad:
                detail = await results_of(uow).detail(job)
                assert detail.output["durationMs"] == outputs[job]["durationMs"]


def _nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value
