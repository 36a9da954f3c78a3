"""Archives: write-once, verified, compressed JSON payloads on any BlobStore.

This is the blob API the rest of execstore uses. A write streams records through the
codec into a create-only put and returns the :class:`ArchiveRef` to record in the
database; writing the same records to the same key again finds the identical blob and
returns the same ref (that is how a crashed archival run is retried safely). Every read
checks the recorded sha256; whole-payload reads go through the byte-bounded cache.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from execstore.blob.base import ArchiveRef, BlobStore
from execstore.blob.cache import ArchiveCache
from execstore.blob.codec import (
    ArchiveEncoder,
    PayloadFormat,
    decode_payload,
    encode_document,
    encode_records,
    iter_payload_records,
    verify_stream,
)
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.config import Codec
from execstore.errors import ArchiveCorrupt, BlobStoreError

__all__ = ["WRITTEN_AT_METADATA", "Archives", "StoredArchive"]

# Every archive carries the time it was first written, so the reconciler can leave young
# blobs (an in-flight write between its upload and its commit) alone.
WRITTEN_AT_METADATA: Final = "execstore_written_at"

# Decoding more than this in the event loop would stall other tasks noticeably;
# larger payloads are decompressed in a worker thread (zlib releases the GIL).
_INLINE_DECODE_LIMIT: Final = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredArchive:
    """The ref of a written archive, and whether this write created the blob.

    ``created`` is False when the key already held the very same bytes (a retried
    write): only a writer that created a blob may delete it again on rollback.
    """

    ref: ArchiveRef
    created: bool


class Archives:
    """Compressed, verified archives on ``store``, read through an optional ``cache``.

    Every blob records when it was first written (:data:`WRITTEN_AT_METADATA`) by
    ``clock``: an opened ExecStore gives its archives the store's clock.
    """

    def __init__(
        self,
        store: BlobStore,
        *,
        cache: ArchiveCache | None = None,
        codec: Codec = Codec.GZIP,
        compression_level: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.cache = cache
        self.clock = clock
        self.codec = Codec(codec)
        # None means the codec's default (gzip 6, zstd 3); exposed for bulk jobs and tests.
        self.compression_level = compression_level

    def __repr__(self) -> str:
        return f"Archives(store={self.store!r}, codec={self.codec.value!r})"

    async def write_records(
        self, key: str, records: Iterable[Any] | AsyncIterable[Any]
    ) -> ArchiveRef:
        """The ref of an NDJSON archive of ``records`` at ``key``, encoded while uploading."""
        return (await self.store_records(key, records)).ref

    async def write_document(self, key: str, document: Any) -> ArchiveRef:
        """The ref of a one-document JSON archive of ``document`` at ``key``."""
        return (await self.store_document(key, document)).ref

    async def store_records(
        self, key: str, records: Iterable[Any] | AsyncIterable[Any]
    ) -> StoredArchive:
        """Like :meth:`write_records`, also saying whether this call created the blob."""
        encoder = self._encoder(PayloadFormat.NDJSON, key)
        written_at = self._written_at()
        async with aclosing(encode_records(records, encoder)) as chunks:
            result = await self.store.put(
                key, chunks, metadata=lambda: {**encoder.metadata(), **written_at}
            )
        return StoredArchive(self._checked_ref(key, encoder, result.sha256), result.created)

    async def store_document(self, key: str, document: Any) -> StoredArchive:
        """Like :meth:`write_document`, also saying whether this call created the blob."""
        stored, encoder = self.encode_document(document, key=key)
        # One document is in memory anyway; a single put is one request instead of a stream.
        result = await self.store.put(
            key, stored, metadata={**encoder.metadata(), **self._written_at()}
        )
        return StoredArchive(self._checked_ref(key, encoder, result.sha256), result.created)

    def encode_document(self, document: Any, *, key: str = "") -> tuple[bytes, ArchiveEncoder]:
        """The bytes :meth:`write_document` would store for ``document``, and the encoder.

        Deterministic: the same document with the same codec and level always gives the
        same bytes and sha256 (what makes a retried write a no-op).
        """
        encoder = self._encoder(PayloadFormat.JSON, key)
        return encode_document(document, encoder), encoder

    async def read_bytes(self, ref: ArchiveRef, *, cached: bool = True) -> bytes:
        """The decoded payload bytes of ``ref``, verified, from the cache when possible.

        ``cached=False`` reads what the store holds now (a check of the store itself,
        such as ``audit verify``, must not be answered from memory).
        """
        if self.cache is None or not cached:
            return await self._fetch_payload(ref)
        return await self.cache.get_or_fetch(ref.key, ref.sha256, lambda: self._fetch_payload(ref))

    async def read_document(self, ref: ArchiveRef) -> Any:
        """The JSON document stored by ``write_document`` (verified, cached)."""
        payload = await self.read_bytes(ref)
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise ArchiveCorrupt(ref.key, f"payload is not one JSON document: {exc}") from exc

    async def iter_records(self, ref: ArchiveRef) -> AsyncIterator[Any]:
        """The records of an NDJSON archive, streamed in bounded memory (bypasses the cache).

        A sha256 mismatch can only be detected after the last chunk, so ArchiveCorrupt
        may come after some records were yielded; use :meth:`read_records` when the
        caller must not act on records of a corrupt archive.
        """
        async with (
            _closing(self.store.stream(ref.key)) as chunks,
            aclosing(iter_payload_records(ref, chunks)) as records,
        ):
            async for record in records:
                yield record

    async def read_records(self, ref: ArchiveRef) -> list[Any]:
        """All records of an NDJSON archive, verified before any is returned (cached)."""
        payload = await self.read_bytes(ref)
        records: list[Any] = []
        for line in payload.split(b"\n"):
            if line:
                try:
                    records.append(json.loads(line))
                except ValueError as exc:
                    raise ArchiveCorrupt(ref.key, f"invalid NDJSON line: {exc}") from exc
        if len(records) != ref.record_count:
            raise ArchiveCorrupt(ref.key, f"{len(records)} records != {ref.record_count}")
        return records

    async def verify(self, ref: ArchiveRef) -> None:
        """Return if the stored blob matches ``ref``; ArchiveMissing or ArchiveCorrupt if not."""
        async with _closing(self.store.stream(ref.key)) as chunks:
            await verify_stream(ref, chunks)

    async def delete(self, key: str) -> bool:
        """True if the archive at ``key`` existed and is now deleted (and uncached)."""
        existed = await self.store.delete(key)
        if self.cache is not None:
            self.cache.discard(key)
        return existed

    def _written_at(self) -> dict[str, str]:
        return {WRITTEN_AT_METADATA: self.clock.now().isoformat()}

    def _encoder(self, payload: PayloadFormat, key: str) -> ArchiveEncoder:
        return ArchiveEncoder(self.codec, payload=payload, level=self.compression_level, key=key)

    def _checked_ref(self, key: str, encoder: ArchiveEncoder, stored_sha256: bytes) -> ArchiveRef:
        ref = encoder.ref(key)
        if stored_sha256 != ref.sha256:
            # The store hashed different bytes than the encoder produced: never record that.
            raise BlobStoreError(
                f"store reported sha256 {stored_sha256.hex()} for {key!r}, "
                f"encoder produced {ref.sha256.hex()}"
            )
        return ref

    async def _fetch_payload(self, ref: ArchiveRef) -> bytes:
        stored = await self.store.get(ref.key)
        if ref.raw_size > _INLINE_DECODE_LIMIT:
            return await asyncio.to_thread(decode_payload, ref, stored)
        return decode_payload(ref, stored)


@asynccontextmanager
async def _closing(stream: AsyncIterator[bytes]) -> AsyncIterator[AsyncIterator[bytes]]:
    """Close a store's stream on exit, so an abandoned download frees its connection."""
    try:
        yield stream
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
