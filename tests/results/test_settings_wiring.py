"""EXECSTORE_SCREENSHOT_BASE_URL reaches the results repository through the facade."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
import sqlalchemy as sa

from execstore.config import load_settings
from execstore.schema import models as m
from execstore.store import ExecStore


async def test_screenshot_base_url_setting_shortens_stored_suffixes(db_url: str, tmp_path) -> None:
    base = "https://acme.blob.core.windows.net/screenshots/"
    settings = load_settings(
        database_url=db_url, blob_url=f"file:{tmp_path}", screenshot_base_url=base
    )
    org = uuid.uuid4()
    async with ExecStore.open(settings) as store:
        async with store.unit(org) as uow:
            uow.session.add(m.Organization(id=org, name="o"))
            wf = await uow.reference.add_workflow("wf")
            job = await uow.jobs.create(workflow_id=wf.id)
            url = f"{base}{org}/{job.id}/step-03.png"
            await uow.results.save(
                job.id,
                {
                    "success": True,
                    "screenshots": [
                        {
                            "stepIndex": 3,
                            "url": url,
                            "capturedAt": dt.datetime.now(dt.UTC).isoformat(),
                        }
                    ],
                },
            )
        async with store.unit(org) as uow:
            shots = await uow.results.screenshots(job.id)
            stored = await uow.session.scalar(
                sa.select(m.ExecutionScreenshot.key_suffix).where(
                    m.ExecutionScreenshot.job_id == job.id
                )
            )
    assert [s.url for s in shots] == [url]
    assert stored == "step-03.png"


async def _save_one(store: ExecStore, output: dict[str, object]) -> tuple[uuid.UUID, uuid.UUID]:
    org = uuid.uuid4()
    async with store.unit(org) as uow:
        await uow.reference.add_organization("o")
        wf = await uow.reference.add_workflow("wf")
        job = await uow.jobs.create(workflow_id=wf.id)
        await uow.results.save(job.id, output)
    return org, job.id


async def test_cache_bytes_setting_bounds_the_read_cache(
    db_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXECSTORE_CACHE_BYTES", "0")  # nothing fits: every read fetches
    settings = load_settings(database_url=db_url, blob_url=f"file:{tmp_path}")
    async with ExecStore.open(settings) as store:
        assert store.archives.cache is not None
        assert store.archives.cache.max_bytes == 0
        org, job = await _save_one(store, {"success": True, "notes": "x" * 500})
        async with store.unit(org) as uow:
            await uow.results.detail(job)
            await uow.results.detail(job)
        stats = store.archives.cache.stats()
    assert (stats.fetches, stats.hits, stats.entries) == (2, 0, 0)


async def test_zstd_codec_setting_reaches_the_archives(
    db_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zstandard

    monkeypatch.setenv("EXECSTORE_ARCHIVE_CODEC", "zstd")
    settings = load_settings(database_url=db_url, blob_url=f"file:{tmp_path}")
    output = {"success": True, "stepResults": [{"success": True}] * 3}
    async with ExecStore.open(settings) as store:
        org, job = await _save_one(store, output)
        (key,) = [info.key async for info in store.blobs.list("results/")]
        stored = await store.blobs.get(key)
        async with store.unit(org) as uow:
            detail = await uow.results.detail(job)
        async with store.sessions() as session:
            codec = (await session.get(m.JobResultArchive, job)).codec
    assert key.endswith(f"/{job}/result.json.zst")
    assert stored[:4] == b"\x28\xb5\x2f\xfd"  # the zstd frame magic
    assert json.loads(zstandard.ZstdDecompressor().decompressobj().decompress(stored)) == output
    assert codec.name == "ZSTD"
    assert detail.output == output
