"""The blob store contract every backend implements, and the archive reference type.

A blob store is write-once: ``put`` creates a key or, when the key already holds the
very same bytes, succeeds without writing; different bytes at an existing key raise
:class:`~execstore.errors.ArchiveConflict`. Nothing is ever silently overwritten.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Protocol, TypeAlias, runtime_checkable

from execstore.config import Codec

__all__ = [
    "SHA256_METADATA",
    "ArchiveRef",
    "BlobInfo",
    "BlobStore",
    "Metadata",
    "PutResult",
    "resolve_metadata",
]

# Every store records the sha256 (hex) of the bytes it stored under this metadata name;
# a create-only put compares against it to tell an identical re-put from a conflict.
SHA256_METADATA: Final = "sha256"

# Metadata is either known up front or computed while the data streams (record counts,
# sizes): a callable is called exactly once, after the data has been fully consumed.
Metadata: TypeAlias = Mapping[str, str] | Callable[[], Mapping[str, str]] | None


def resolve_metadata(metadata: Metadata) -> dict[str, str]:
    """The metadata as a plain dict (calling it if it was given as a callable)."""
    if metadata is None:
        return {}
    if callable(metadata):
        return dict(metadata())
    return dict(metadata)


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What a listing says about one blob."""

    key: str
    size: int
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PutResult:
    """The outcome of a create-only put: ``created`` is False for an identical re-put."""

    key: str
    size: int
    sha256: bytes
    created: bool


@dataclass(frozen=True, slots=True)
class ArchiveRef:
    """Everything needed to find, verify and decode one archive blob.

    ``sha256`` is the digest of the stored (compressed) bytes; ``raw_size`` is the size of
    the decoded payload. The pair (key, sha256) is immutable, which is what makes it a
    safe cache key.
    """

    key: str
    codec: Codec
    sha256: bytes
    raw_size: int
    stored_size: int
    record_count: int
    format_version: int = 1


@runtime_checkable
class BlobStore(Protocol):
    """Async, write-once blob storage."""

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        metadata: Metadata = None,
    ) -> PutResult:
        """Create ``key`` with ``data``; identical bytes again is a no-op (created=False).

        Different bytes at an existing key raise ArchiveConflict. A callable ``metadata``
        is called after ``data`` is consumed, so it may report values computed while
        streaming. The store adds ``SHA256_METADATA`` itself. Metadata names must be
        identifiers and values ASCII (Azure's rules, applied everywhere).
        """
        ...

    async def get(self, key: str) -> bytes:
        """The whole blob; raises ArchiveMissing when absent."""
        ...

    def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """The blob in chunks, without holding it whole; raises ArchiveMissing when absent."""
        ...

    async def exists(self, key: str) -> bool:
        """Whether ``key`` holds a blob."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""
        ...

    def list(self, prefix: str = "") -> AsyncIterator[BlobInfo]:
        """Every blob whose key starts with ``prefix``."""
        ...

    async def sweep_partial(
        self, prefix: str, *, older_than: datetime, dry_run: bool = False
    ) -> builtins.list[str]:
        """The crash leftovers under ``prefix`` older than ``older_than``, removed.

        Leftovers are what a writer killed mid-put leaves behind that no key reaches:
        partial temporary files, metadata without its blob. They are returned as paths
        relative to the store (not keys: a leftover is not a blob) and removed unless
        ``dry_run``. ``older_than`` must leave room for puts still running. Blobs are
        never touched. Backends without such leftovers return ``[]``.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
