"""One conformance suite, run against every BlobStore backend (local directory, Azurite)."""

from __future__ import annotations

import asyncio
import hashlib
import random
import tracemalloc
import unicodedata
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from execstore.blob import (
    SHA256_METADATA,
    ArchiveCache,
    Archives,
    BlobStore,
    InvalidBlobKey,
    validate_key,
)
from execstore.errors import ArchiveConflict, ArchiveCorrupt, ArchiveMissing, BlobStoreError

if TYPE_CHECKING:
    from conftest import BlobBackend  # tests/blob/conftest.py

MiB = 1024 * 1024


def _valid_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidBlobKey:
        return False
    return True


# Keys for the round-trip property: mostly characters the rules allow, from anywhere in
# Unicode, plus ones special in URLs, file names and normalization, plus a few the rules
# refuse, so that a rule lost from validate_key lets them through to the stores.
_allowed_chars = st.characters(
    codec="utf-8", exclude_categories=("Cc", "Cs", "Cf", "Co", "Cn", "Zl", "Zp")
)
_special_chars = st.sampled_from("é\u0301ñ한글🚀\ufffd\u00a0 %?#&+=;:@~'\"<>|*.-_")
_refused_chars = st.sampled_from(
    "\ufffe\uffff\ufdd0\U0001fffe\u200b\u202e\ufeff\ue000\u0378\u2028\x00\x7f"
)
_segments = st.text(
    st.one_of(_allowed_chars, _allowed_chars, _allowed_chars, _special_chars, _refused_chars),
    min_size=1,
    max_size=12,
)
blob_keys = st.lists(_segments, min_size=1, max_size=3).map("/".join).filter(_valid_key)


async def chunks_of(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def collect(store: BlobStore, key: str, chunk_size: int = 1 << 20) -> bytes:
    return b"".join([chunk async for chunk in store.stream(key, chunk_size=chunk_size)])


def step_records(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "step": i,
            "action": rng.choice(["click", "type", "navigate", "extract"]),
            "selector": f"#claim-{rng.randrange(10_000)}",
            "ok": rng.random() > 0.1,
            "text": "ünïcødé ✓ " + rng.randbytes(12).hex(),
        }
        for i in range(count)
    ]


class TestBlobStoreContract:
    """What every BlobStore must do; ``blob_backend`` runs it per backend."""

    async def test_bytes_round_trip_with_metadata(self, blob_store: BlobStore) -> None:
        data = b"\x1f\x8b not really gzip \x00\xff" * 1000
        result = await blob_store.put("a/b/c.bin", data, metadata={"kind": "test"})
        assert result.created
        assert result.size == len(data)
        assert result.sha256 == hashlib.sha256(data).digest()
        assert await blob_store.get("a/b/c.bin") == data
        assert await blob_store.exists("a/b/c.bin")
        [info] = [info async for info in blob_store.list("a/")]
        assert info.key == "a/b/c.bin"
        assert info.size == len(data)
        assert info.metadata["kind"] == "test"
        assert info.metadata[SHA256_METADATA] == hashlib.sha256(data).hexdigest()

    async def test_stream_round_trip_in_bounded_chunks(self, blob_store: BlobStore) -> None:
        data = random.Random(1).randbytes(5 * MiB + 123)
        late = {"records": "unknown"}

        async def produce() -> AsyncIterator[bytes]:
            async for chunk in chunks_of(data):
                yield chunk
            late["records"] = "set after streaming"  # known only once the data is consumed

        result = await blob_store.put("s/blob", produce(), metadata=lambda: late)
        assert result.created
        assert result.sha256 == hashlib.sha256(data).digest()
        pieces = [chunk async for chunk in blob_store.stream("s/blob", chunk_size=MiB)]
        assert b"".join(pieces) == data
        assert max(len(piece) for piece in pieces) <= MiB
        [info] = [info async for info in blob_store.list("s/")]
        assert info.metadata["records"] == "set after streaming"

    async def test_empty_blob(self, blob_store: BlobStore) -> None:
        assert (await blob_store.put("empty", b"")).created
        assert await blob_store.get("empty") == b""
        assert await collect(blob_store, "empty") == b""

    async def test_identical_reput_is_a_noop(self, blob_store: BlobStore) -> None:
        data = b"same bytes" * 100
        assert (await blob_store.put("k", data)).created
        again = await blob_store.put("k", data)
        assert not again.created
        assert again.sha256 == hashlib.sha256(data).digest()
        streamed_again = await blob_store.put("k", chunks_of(data, 7))
        assert not streamed_again.created
        assert await blob_store.get("k") == data

    async def test_different_bytes_conflict_and_keep_the_original(
        self, blob_store: BlobStore
    ) -> None:
        await blob_store.put("k", b"original")
        with pytest.raises(ArchiveConflict) as caught:
            await blob_store.put("k", b"different")
        assert caught.value.key == "k"
        with pytest.raises(ArchiveConflict):
            await blob_store.put("k", chunks_of(b"different, streamed" * 10_000, 1000))
        assert await blob_store.get("k") == b"original"

    async def test_large_streamed_conflict_is_refused(self, blob_store: BlobStore) -> None:
        # Large enough that Azure uploads staged blocks: the commit must be create-only too.
        first = random.Random(2).randbytes(9 * MiB)
        second = random.Random(3).randbytes(9 * MiB)
        assert (await blob_store.put("big", chunks_of(first, MiB))).created
        assert not (await blob_store.put("big", chunks_of(first, MiB))).created
        with pytest.raises(ArchiveConflict):
            await blob_store.put("big", chunks_of(second, MiB))
        assert not (await blob_store.put("big", first)).created  # large bytes, same contract
        with pytest.raises(ArchiveConflict):
            await blob_store.put("big", second)
        assert hashlib.sha256(await collect(blob_store, "big")).digest() == (
            hashlib.sha256(first).digest()
        )

    async def test_concurrent_writers_exactly_one_wins(self, blob_store: BlobStore) -> None:
        contents = [f"writer {i}".encode() * 1000 for i in range(8)]
        outcomes = await asyncio.gather(
            *(blob_store.put("race", data) for data in contents), return_exceptions=True
        )
        winners = [i for i, outcome in enumerate(outcomes) if not isinstance(outcome, Exception)]
        assert len(winners) == 1, outcomes
        losers = [o for o in outcomes if isinstance(o, Exception)]
        assert all(isinstance(o, ArchiveConflict) for o in losers), losers
        assert await blob_store.get("race") == contents[winners[0]]

    async def test_concurrent_identical_writers_all_succeed_once(
        self, blob_store: BlobStore
    ) -> None:
        data = b"identical" * 5000
        results = await asyncio.gather(*(blob_store.put("same", data) for _ in range(8)))
        assert sum(result.created for result in results) == 1
        assert await blob_store.get("same") == data

    async def test_missing_blob(self, blob_store: BlobStore) -> None:
        with pytest.raises(ArchiveMissing) as caught:
            await blob_store.get("no/such/blob")
        assert caught.value.key == "no/such/blob"
        with pytest.raises(ArchiveMissing):
            await collect(blob_store, "no/such/blob")
        assert not await blob_store.exists("no/such/blob")
        assert not await blob_store.delete("no/such/blob")

    async def test_a_directory_like_prefix_is_not_a_blob(self, blob_store: BlobStore) -> None:
        await blob_store.put("dir/file", b"x")
        with pytest.raises(ArchiveMissing):
            await blob_store.get("dir")
        assert not await blob_store.exists("dir")

    async def test_flipped_byte_is_detected(self, blob_backend: BlobBackend) -> None:
        archives = Archives(blob_backend.store, cache=ArchiveCache())
        ref = await archives.write_records("logs/flip.ndjson.gz", step_records(2000))
        await blob_backend.corrupt(ref.key)
        with pytest.raises(ArchiveCorrupt, match="sha256"):
            await archives.read_bytes(ref)
        with pytest.raises(ArchiveCorrupt):
            await archives.verify(ref)
        with pytest.raises(ArchiveCorrupt):
            _ = [record async for record in archives.iter_records(ref)]
        assert archives.cache is not None
        assert archives.cache.stats().entries == 0

    async def test_concurrent_readers(self, blob_store: BlobStore) -> None:
        records = step_records(3000)
        archives = Archives(blob_store, cache=ArchiveCache())
        ref = await archives.write_records("results/many-readers.ndjson.gz", records)
        raw = await asyncio.gather(*(blob_store.get(ref.key) for _ in range(20)))
        assert len({hashlib.sha256(r).digest() for r in raw}) == 1
        assert hashlib.sha256(raw[0]).digest() == ref.sha256
        streamed = await asyncio.gather(*(collect(blob_store, ref.key, 4096) for _ in range(10)))
        assert set(streamed) == {raw[0]}
        decoded = await asyncio.gather(*(archives.read_records(ref) for _ in range(50)))
        assert all(result == records for result in decoded)
        assert archives.cache is not None
        assert archives.cache.stats().fetches == 1  # single-flight across the 50 readers

    async def test_blob_over_64_mib_streams_in_bounded_memory(self, blob_store: BlobStore) -> None:
        size = 65 * MiB + 17
        rng = random.Random(64)
        expected = hashlib.sha256()

        async def produce() -> AsyncIterator[bytes]:
            left = size
            while left:
                piece = rng.randbytes(min(MiB, left))
                expected.update(piece)
                left -= len(piece)
                yield piece

        tracemalloc.start()
        try:
            result = await blob_store.put("huge/blob.bin", produce())
            _, put_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            got = hashlib.sha256()
            total = 0
            async for chunk in blob_store.stream("huge/blob.bin"):
                got.update(chunk)
                total += len(chunk)
            _, read_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert result.size == size
        assert total == size
        assert got.digest() == expected.digest() == result.sha256
        assert put_peak < 24 * MiB, put_peak
        assert read_peak < 24 * MiB, read_peak

    async def test_archive_over_64_mib_round_trips_in_bounded_memory(
        self, blob_store: BlobStore
    ) -> None:
        rng = random.Random(65)
        # Word soup: compressible like real log text, yet no two records are alike.
        soup = " ".join(rng.randbytes(rng.randrange(2, 8)).hex() for _ in range(200_000))
        count = 17_000  # ~4 KiB each: > 64 MiB of NDJSON, generated on the fly

        async def produce() -> AsyncIterator[dict[str, Any]]:
            for i in range(count):
                start = (i * 7919) % (len(soup) - 4000)
                yield {
                    "seq": i,
                    "level": "INFO" if i % 7 else "WARN",
                    "message": soup[start : start + 3900],
                    "context": {"step": i % 40, "payer": soup[start : start + 12]},
                }

        # Level 1 keeps this test quick; the level is part of the public API for bulk jobs.
        archives = Archives(blob_store, compression_level=1)
        tracemalloc.start()
        try:
            ref = await archives.write_records("logs/huge.ndjson.gz", produce())
            _, write_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            seen = 0
            async for record in archives.iter_records(ref):
                assert record["seq"] == seen
                seen += 1
            _, read_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert ref.raw_size > 64 * MiB
        assert ref.record_count == seen == count
        assert write_peak < 24 * MiB, write_peak
        assert read_peak < 24 * MiB, read_peak

    async def test_unicode_keys(self, blob_store: BlobStore) -> None:
        keys = ["logs/ünïcødé/日本語/файл 1.ndjson.gz", "results/emoji 🚀/naïve.json.gz"]
        for i, key in enumerate(keys):
            await blob_store.put(key, f"payload {i}".encode())
        for i, key in enumerate(keys):
            assert await blob_store.get(key) == f"payload {i}".encode()
        assert [info.key async for info in blob_store.list("logs/ünïcødé/")] == [keys[0]]
        assert {info.key async for info in blob_store.list()} == set(keys)

    async def test_list_by_prefix(self, blob_store: BlobStore) -> None:
        for key in ["a/2", "a/1", "ab/3", "b/4", "a/deep/5"]:
            await blob_store.put(key, key.encode())

        async def keys(prefix: str) -> list[str]:
            return [info.key async for info in blob_store.list(prefix)]

        assert await keys("a/") == ["a/1", "a/2", "a/deep/5"]
        assert await keys("a") == ["a/1", "a/2", "a/deep/5", "ab/3"]
        assert await keys("") == ["a/1", "a/2", "a/deep/5", "ab/3", "b/4"]
        assert await keys("zzz/") == []
        sizes = {info.key: info.size async for info in blob_store.list("b")}
        assert sizes == {"b/4": 3}

    async def test_delete(self, blob_store: BlobStore) -> None:
        await blob_store.put("d/x", b"first")
        assert await blob_store.delete("d/x")
        assert not await blob_store.exists("d/x")
        with pytest.raises(ArchiveMissing):
            await blob_store.get("d/x")
        assert not await blob_store.delete("d/x")
        assert [info async for info in blob_store.list("d/")] == []
        # Deleting frees the key for new content (the reconciler's repair path).
        assert (await blob_store.put("d/x", b"second")).created
        assert await blob_store.get("d/x") == b"second"

    async def test_sweep_partial_finds_nothing_after_ordinary_work(
        self, blob_store: BlobStore
    ) -> None:
        async def broken() -> AsyncIterator[bytes]:
            yield b"partial"
            raise RuntimeError("the source went away")

        await blob_store.put("w/a", b"a", metadata={"m": "1"})
        await blob_store.put("w/b", chunks_of(b"b" * 10_000, 1000))
        await blob_store.put("w/gone", b"x")
        await blob_store.delete("w/gone")
        with pytest.raises(RuntimeError):
            await blob_store.put("w/broken", broken())
        with pytest.raises(ArchiveConflict):
            await blob_store.put("w/a", b"different")
        # Even a cut-off in the future finds nothing: ordinary work leaves no leftovers,
        # and what a sweep may remove never includes a blob or its metadata.
        future = datetime.now(UTC) + timedelta(days=1)
        assert await blob_store.sweep_partial("", older_than=future, dry_run=True) == []
        assert await blob_store.sweep_partial("w/", older_than=future) == []
        assert [(info.key, info.metadata.get("m")) async for info in blob_store.list()] == [
            ("w/a", "1"),
            ("w/b", None),
        ]
        assert await blob_store.get("w/a") == b"a"

    @pytest.mark.parametrize(
        "key",
        [
            "",
            "/abs",
            "../up",
            "a/../b",
            "a//b",
            "a/",
            "nul\x00",
            ".hidden",
            "a\\b",
            "non\ufffechar",
            "cafe\u0301",
            "zero\u200bwidth",
            "private\ue000",
        ],
    )
    async def test_invalid_keys_are_refused(self, blob_store: BlobStore, key: str) -> None:
        with pytest.raises(InvalidBlobKey):
            await blob_store.put(key, b"x")
        with pytest.raises(InvalidBlobKey):
            await blob_store.put(key, chunks_of(b"x"))
        with pytest.raises(InvalidBlobKey):
            await blob_store.get(key)
        with pytest.raises(InvalidBlobKey):
            await collect(blob_store, key)
        with pytest.raises(InvalidBlobKey):
            await blob_store.exists(key)
        with pytest.raises(InvalidBlobKey):
            await blob_store.delete(key)
        assert [info async for info in blob_store.list()] == []

    async def test_nfc_and_nfd_spellings_cannot_become_two_blobs(
        self, blob_store: BlobStore
    ) -> None:
        nfc = unicodedata.normalize("NFC", "résumé/naïve café")
        await blob_store.put(nfc, b"one")
        with pytest.raises(InvalidBlobKey, match="NFC"):
            await blob_store.put(unicodedata.normalize("NFD", nfc), b"two")
        assert [info.key async for info in blob_store.list()] == [nfc]

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(key=blob_keys)
    async def test_every_valid_key_round_trips_and_lists_back_identically(
        self, blob_store: BlobStore, key: str
    ) -> None:
        # Each example gets its own directory: the fixture's store outlives the examples.
        scope = f"rt-{uuid.uuid4().hex[:12]}/"
        full = validate_key(scope + key)
        payload = full.encode("utf-8")
        assert (await blob_store.put(full, payload)).created
        assert await blob_store.get(full) == payload
        assert await blob_store.exists(full)
        assert [info.key async for info in blob_store.list(scope)] == [full]
        assert [info.key async for info in blob_store.list(full)] == [full]
        assert await blob_store.delete(full)

    async def test_connection_drop_mid_download_fails_cleanly(
        self, blob_backend: BlobBackend
    ) -> None:
        records = [{"i": i, "noise": random.Random(i).randbytes(64).hex()} for i in range(8000)]
        writer = Archives(blob_backend.store)
        ref = await writer.write_records("logs/dropped.ndjson.gz", records)
        assert ref.stored_size > 256 * 1024
        flaky = await blob_backend.dropping_store(after_bytes=64 * 1024)
        cache = ArchiveCache()
        reader = Archives(flaky, cache=cache)
        with pytest.raises(BlobStoreError):
            await asyncio.wait_for(reader.read_bytes(ref), timeout=20)
        after_read = blob_backend.interruptions()
        assert after_read >= 1  # the failure really happened mid-transfer
        with pytest.raises(BlobStoreError):
            await asyncio.wait_for(collect(flaky, ref.key), timeout=20)
        assert blob_backend.interruptions() > after_read
        stats = cache.stats()
        assert (stats.entries, stats.current_bytes) == (0, 0)
        # The failure is not remembered: a healthy store reads and caches it afterwards.
        healthy = Archives(blob_backend.store, cache=cache)
        assert await healthy.read_records(ref) == records
        assert cache.stats().entries == 1
