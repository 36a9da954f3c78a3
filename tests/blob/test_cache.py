"""The archive cache: bounded in bytes, single-flight, never stale."""

from __future__ import annotations

import asyncio

import pytest

from execstore.blob import ArchiveCache
from execstore.errors import BlobStoreError

SHA_A = b"a" * 32
SHA_B = b"b" * 32


def test_bounded_in_bytes_and_counts_evictions() -> None:
    cache = ArchiveCache(max_bytes=1000)
    for i in range(5):
        assert cache.put(f"k{i}", SHA_A, bytes(300))
    stats = cache.stats()
    assert stats.current_bytes == 900
    assert stats.entries == 3
    assert stats.evictions == 2
    assert cache.get("k0", SHA_A) is None  # least recently used went first
    assert cache.get("k4", SHA_A) == bytes(300)


def test_lru_order_follows_reads() -> None:
    cache = ArchiveCache(max_bytes=600)
    cache.put("old", SHA_A, bytes(300))
    cache.put("new", SHA_A, bytes(300))
    assert cache.get("old", SHA_A) is not None  # touch: "new" is now the oldest
    cache.put("third", SHA_A, bytes(300))
    assert cache.get("old", SHA_A) is not None
    assert cache.get("new", SHA_A) is None


def test_an_entry_larger_than_the_cache_is_not_cached() -> None:
    cache = ArchiveCache(max_bytes=100)
    cache.put("small", SHA_A, bytes(50))
    assert not cache.put("huge", SHA_A, bytes(101))
    stats = cache.stats()
    assert (stats.entries, stats.current_bytes, stats.evictions) == (1, 50, 0)


def test_zero_bytes_caches_nothing() -> None:
    cache = ArchiveCache(max_bytes=0)
    assert not cache.put("k", SHA_A, b"x")
    assert cache.stats().entries == 0


def test_stale_data_is_impossible_because_the_sha_is_part_of_the_key() -> None:
    cache = ArchiveCache()
    cache.put("k", SHA_A, b"first version")
    assert cache.get("k", SHA_B) is None
    cache.put("k", SHA_B, b"second version")
    assert cache.get("k", SHA_A) == b"first version"
    assert cache.get("k", SHA_B) == b"second version"
    assert cache.discard("k") == 2
    assert cache.get("k", SHA_A) is None


async def test_concurrent_misses_fetch_once() -> None:
    cache = ArchiveCache()
    calls = 0
    release = asyncio.Event()

    async def fetch() -> bytes:
        nonlocal calls
        calls += 1
        await release.wait()
        return b"payload"

    waiters = [asyncio.ensure_future(cache.get_or_fetch("k", SHA_A, fetch)) for _ in range(25)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiters) == [b"payload"] * 25
    assert calls == 1
    stats = cache.stats()
    assert (stats.fetches, stats.misses, stats.hits) == (1, 25, 0)
    assert await cache.get_or_fetch("k", SHA_A, fetch) == b"payload"
    assert calls == 1
    assert cache.stats().hits == 1


async def test_a_failed_fetch_reaches_every_waiter_and_is_not_cached() -> None:
    cache = ArchiveCache()
    calls = 0
    release = asyncio.Event()

    async def failing() -> bytes:
        nonlocal calls
        calls += 1
        await release.wait()
        raise BlobStoreError("connection reset")

    waiters = [asyncio.ensure_future(cache.get_or_fetch("k", SHA_A, failing)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(r, BlobStoreError) for r in results)
    assert calls == 1
    assert cache.stats().entries == 0

    async def healthy() -> bytes:
        return b"ok"

    assert await cache.get_or_fetch("k", SHA_A, healthy) == b"ok"  # retried, not remembered
    assert cache.stats().fetches == 2


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    cache = ArchiveCache()
    release = asyncio.Event()

    async def fetch() -> bytes:
        await release.wait()
        return b"done"

    first = asyncio.ensure_future(cache.get_or_fetch("k", SHA_A, fetch))
    second = asyncio.ensure_future(cache.get_or_fetch("k", SHA_A, fetch))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    release.set()
    assert await second == b"done"
    assert cache.get("k", SHA_A) == b"done"


def test_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        ArchiveCache(max_bytes=-1)
