"""A byte-bounded LRU cache for decoded archive payloads, with single-flight fetches.

Entries are keyed by ``(key, sha256)``. An archive is write-once and its sha256 is
recorded beside its key, so a cached value can never be stale: a different payload at the
same key (after a delete and re-write) has a different digest and is a different entry.

Concurrent misses for one entry share a single fetch. The fetch runs in its own task so
that a cancelled caller does not cancel it for the others; a failed fetch is handed to
every waiter and nothing is cached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from cachetools import LRUCache

__all__ = ["DEFAULT_CACHE_BYTES", "ArchiveCache", "CacheStats"]

DEFAULT_CACHE_BYTES: Final = 64 * 1024 * 1024

_Entry = tuple[str, bytes]


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of the cache's counters.

    ``misses`` counts every lookup not served from memory, including callers that joined
    a fetch already in flight; ``fetches`` counts the fetches actually started, so
    ``misses - fetches`` is what single-flight saved.
    """

    hits: int
    misses: int
    fetches: int
    evictions: int
    entries: int
    current_bytes: int
    max_bytes: int


class _CountingLRU(LRUCache[_Entry, bytes]):
    """An LRUCache sized in bytes that counts what it evicts to make room."""

    evictions: int = 0

    def popitem(self) -> tuple[_Entry, bytes]:
        item = super().popitem()
        self.evictions += 1
        return item


def _byte_size(value: bytes) -> int:
    return len(value)


class ArchiveCache:
    """Decoded payloads by (key, sha256), at most ``max_bytes`` in total."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.max_bytes = max_bytes
        # cachetools refuses maxsize 0; with 1 byte nothing non-empty fits, which is the point.
        self._lru = _CountingLRU(maxsize=max(max_bytes, 1), getsizeof=_byte_size)
        self._inflight: dict[_Entry, asyncio.Future[bytes]] = {}
        self._hits = 0
        self._misses = 0
        self._fetches = 0

    def __repr__(self) -> str:
        return f"ArchiveCache(max_bytes={self.max_bytes}, current_bytes={self._lru.currsize})"

    def get(self, key: str, sha256: bytes) -> bytes | None:
        """The cached payload, or None (counts as a hit or a miss)."""
        value = self._lru.get((key, sha256))
        if value is None:
            self._misses += 1
        else:
            self._hits += 1
        return value

    def put(self, key: str, sha256: bytes, value: bytes) -> bool:
        """True if ``value`` was cached; a value larger than the whole cache is not."""
        if len(value) > self.max_bytes:
            return False
        self._lru[(key, sha256)] = value
        return True

    async def get_or_fetch(
        self, key: str, sha256: bytes, fetch: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The payload for (key, sha256): from the cache, or from one shared ``fetch``."""
        entry = (key, sha256)
        value = self._lru.get(entry)
        if value is not None:
            self._hits += 1
            return value
        self._misses += 1
        task = self._inflight.get(entry)
        if task is None:
            self._fetches += 1
            task = asyncio.ensure_future(fetch())
            self._inflight[entry] = task
            task.add_done_callback(lambda done: self._settle(entry, done))
        # shield: a caller that gives up must not cancel the fetch other callers await.
        return await asyncio.shield(task)

    def discard(self, key: str) -> int:
        """Drop every cached payload of ``key`` (any sha256); returns how many."""
        stale = [entry for entry in self._lru if entry[0] == key]
        for entry in stale:
            del self._lru[entry]
        return len(stale)

    def clear(self) -> None:
        """Empty the cache (counters are kept)."""
        self._lru.clear()

    def stats(self) -> CacheStats:
        """The counters right now."""
        return CacheStats(
            hits=self._hits,
            misses=self._misses,
            fetches=self._fetches,
            evictions=self._lru.evictions,
            entries=len(self._lru),
            current_bytes=int(self._lru.currsize),
            max_bytes=self.max_bytes,
        )

    def _settle(self, entry: _Entry, task: asyncio.Future[bytes]) -> None:
        if self._inflight.get(entry) is task:
            del self._inflight[entry]
        if task.cancelled():
            return
        if task.exception() is not None:
            return  # retrieved here so an unawaited failure is not logged; not cached
        self.put(entry[0], entry[1], task.result())
