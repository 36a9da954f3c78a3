"""The Archives facade on the local store: retries, caching, codecs, verification."""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from execstore.blob import ArchiveCache, Archives, LocalBlobStore, archive_key
from execstore.config import Codec
from execstore.errors import ArchiveConflict, ArchiveCorrupt, ArchiveMissing

RECORDS = [
    {"id": i, "level": "INFO", "message": f"step {i} done ✓", "extra": {"n": i * 1.5}}
    for i in range(500)
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def archives(root: Path) -> Archives:
    return Archives(LocalBlobStore(root), cache=ArchiveCache(1024 * 1024))


async def test_a_retried_write_finds_the_blob_and_returns_the_same_ref(archives: Archives) -> None:
    key = archive_key("logs", "org1", datetime(2024, 5, 1, tzinfo=UTC), "job1", "part-0")
    first = await archives.write_records(key, RECORDS)
    second = await archives.write_records(key, iter(RECORDS))
    assert first == second
    with pytest.raises(ArchiveConflict):
        await archives.write_records(key, RECORDS[:-1])
    assert await archives.read_records(first) == RECORDS


async def test_async_iterable_records(archives: Archives) -> None:
    async def produce() -> AsyncIterator[dict[str, Any]]:
        for record in RECORDS:
            yield record

    ref = await archives.write_records("logs/async.ndjson.gz", produce())
    assert ref.record_count == len(RECORDS)
    assert [record async for record in archives.iter_records(ref)] == RECORDS


async def test_blob_is_readable_with_standard_tools(archives: Archives, root: Path) -> None:
    ref = await archives.write_records("logs/tools.ndjson.gz", RECORDS)
    path = root / "logs" / "tools.ndjson.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert [json.loads(line) for line in lines] == RECORDS
    # The promise is about these very tools: their absence is a failure, not a skip
    # (`make test` installs them).
    assert shutil.which("gunzip"), "gunzip is not on PATH"
    assert shutil.which("jq"), "jq is not on PATH"
    out = await asyncio.to_thread(
        subprocess.run,
        f"gunzip -c '{path}' | jq -c .id | tail -1",
        shell=True,
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == str(RECORDS[-1]["id"])
    assert ref.stored_size == path.stat().st_size


async def test_metadata_describes_the_payload(archives: Archives) -> None:
    ref = await archives.write_records("logs/meta.ndjson.gz", RECORDS)
    [info] = [info async for info in archives.store.list("logs/meta")]
    assert info.metadata["execstore_format_version"] == "1"
    assert info.metadata["execstore_codec"] == "gzip"
    assert info.metadata["execstore_payload"] == "ndjson"
    assert info.metadata["execstore_record_count"] == str(len(RECORDS))
    assert info.metadata["execstore_raw_size"] == str(ref.raw_size)
    assert info.metadata["sha256"] == ref.sha256.hex()


async def test_document_round_trip_through_the_cache(archives: Archives) -> None:
    document = {"status": "ok", "steps": RECORDS[:20], "naïve": None}
    ref = await archives.write_document("results/r.json.gz", document)
    assert ref.record_count == 1
    assert await archives.read_document(ref) == document
    assert await archives.read_document(ref) == document
    assert archives.cache is not None
    stats = archives.cache.stats()
    assert (stats.fetches, stats.hits) == (1, 1)
    assert stats.current_bytes == ref.raw_size


async def test_zstd_archives(root: Path) -> None:
    archives = Archives(LocalBlobStore(root), codec=Codec.ZSTD)
    ref = await archives.write_records("logs/z.ndjson.zst", RECORDS)
    assert ref.codec is Codec.ZSTD
    assert await archives.read_records(ref) == RECORDS
    assert [record async for record in archives.iter_records(ref)] == RECORDS
    await archives.verify(ref)
    assert shutil.which("zstd"), "zstd is not on PATH (`make test` installs it)"
    out = await asyncio.to_thread(
        subprocess.run,
        ["zstd", "-dc", str(root / "logs" / "z.ndjson.zst")],
        check=True,
        capture_output=True,
    )
    assert [json.loads(line) for line in out.stdout.splitlines()] == RECORDS


async def test_verify_and_missing(archives: Archives, root: Path) -> None:
    ref = await archives.write_records("logs/v.ndjson.gz", RECORDS)
    await archives.verify(ref)
    (root / "logs" / "v.ndjson.gz").write_bytes(b"")
    with pytest.raises(ArchiveCorrupt, match="size"):
        await archives.verify(ref)
    (root / "logs" / "v.ndjson.gz").unlink()
    with pytest.raises(ArchiveMissing):
        await archives.verify(ref)
    with pytest.raises(ArchiveMissing):
        await archives.read_bytes(ref)
    with pytest.raises(ArchiveMissing):
        _ = [record async for record in archives.iter_records(ref)]


async def test_delete_drops_the_cached_payload(archives: Archives) -> None:
    ref = await archives.write_document("results/d.json.gz", {"a": 1})
    await archives.read_document(ref)
    assert await archives.delete(ref.key)
    assert archives.cache is not None
    assert archives.cache.stats().entries == 0
    with pytest.raises(ArchiveMissing):
        await archives.read_document(ref)
    assert not await archives.delete(ref.key)


async def test_read_records_refuses_a_document_with_the_wrong_count(archives: Archives) -> None:
    ref = await archives.write_records("logs/c.ndjson.gz", RECORDS)
    from dataclasses import replace

    with pytest.raises(ArchiveCorrupt, match="records"):
        await archives.read_records(replace(ref, record_count=ref.record_count + 1))


async def test_a_failed_write_leaves_nothing_behind(archives: Archives, root: Path) -> None:
    async def broken() -> AsyncIterator[dict[str, Any]]:
        yield {"ok": 1}
        raise RuntimeError("source database went away")

    with pytest.raises(RuntimeError, match="went away"):
        await archives.write_records("logs/partial.ndjson.gz", broken())
    assert not await archives.store.exists("logs/partial.ndjson.gz")
    assert [p.name for p in (root / "logs").iterdir()] == []  # no temp files either
    ref = await archives.write_records("logs/partial.ndjson.gz", [{"ok": 1}])  # key still free
    assert ref.record_count == 1


async def test_unserializable_records_are_refused_before_anything_is_stored(
    archives: Archives,
) -> None:
    with pytest.raises(TypeError):
        await archives.write_records("logs/bad.ndjson.gz", [{"when": object()}])
    assert not await archives.store.exists("logs/bad.ndjson.gz")
