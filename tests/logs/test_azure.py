"""Log archival on Azure Blob Storage (Azurite): archive, read cold and cached, delete."""

from __future__ import annotations

import uuid

import pytest

from execstore.blob import AzureBlobStore
from execstore.schema import models as m
from execstore.store import ExecStore
from support.timeline import new_jobs

from .conftest import archive, hot_count, lines, months_ago, read_all

pytestmark = pytest.mark.azurite


async def test_archive_read_and_delete_on_azurite(azure_store: ExecStore) -> None:
    store = azure_store
    assert isinstance(store.blobs, AzureBlobStore)
    org = uuid.uuid4()
    async with store.sessions() as session, session.begin():
        session.add(m.Organization(id=org, name="azure org"))
    kept, deleted = await new_jobs(store, org, 2)
    sent = {kept: lines(8, start=months_ago(3)), deleted: lines(5, start=months_ago(3))}
    async with store.unit(org) as uow:
        for job, batch in sent.items():
            await uow.logs.append(job, batch)
    report = await archive(store, chunk_rows=100)
    assert report.set_aside == []
    assert await hot_count(store, kept) == 0
    assert store.archives.cache is not None
    store.archives.cache.clear()
    cold = await read_all(store, org, kept)
    misses = store.archives.cache.stats().misses
    cached = await read_all(store, org, kept)
    assert store.archives.cache.stats().misses == misses  # the second read hit the cache
    assert (
        [e.message for e in cold] == [e.message for e in cached] == [s.message for s in sent[kept]]
    )
    async with store.unit(org) as uow:
        gone = await uow.jobs.delete(deleted)
    assert gone
    assert not await store.blobs.exists(gone[0])
    assert [e.message for e in await read_all(store, org, kept)] == [s.message for s in sent[kept]]
