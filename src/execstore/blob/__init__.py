"""Blob storage: write-once stores (local directory, Azure), the archive codec and cache.

Most callers want :class:`Archives` (built by :func:`open_archives`); the stores and the
codec are public for tools, tests and the reconciler. The Azure store is importable
without the ``azure`` extra; building one without it raises ConfigurationError.
"""

from __future__ import annotations

from execstore.blob.archives import WRITTEN_AT_METADATA, Archives, StoredArchive
from execstore.blob.azure import AzureBlobStore
from execstore.blob.base import (
    SHA256_METADATA,
    ArchiveRef,
    BlobInfo,
    BlobStore,
    Metadata,
    PutResult,
    resolve_metadata,
)
from execstore.blob.cache import DEFAULT_CACHE_BYTES, ArchiveCache, CacheStats
from execstore.blob.codec import FORMAT_VERSION, MAX_ARCHIVE_SIZE, ArchiveEncoder, PayloadFormat
from execstore.blob.factory import open_archives, open_blob_store
from execstore.blob.keys import (
    ARCHIVE_KINDS,
    ArchiveKind,
    InvalidBlobKey,
    archive_key,
    validate_key,
)
from execstore.blob.local import LocalBlobStore

__all__ = [
    "ARCHIVE_KINDS",
    "DEFAULT_CACHE_BYTES",
    "FORMAT_VERSION",
    "MAX_ARCHIVE_SIZE",
    "SHA256_METADATA",
    "WRITTEN_AT_METADATA",
    "ArchiveCache",
    "ArchiveEncoder",
    "ArchiveKind",
    "ArchiveRef",
    "Archives",
    "AzureBlobStore",
    "BlobInfo",
    "BlobStore",
    "CacheStats",
    "InvalidBlobKey",
    "LocalBlobStore",
    "Metadata",
    "PayloadFormat",
    "PutResult",
    "StoredArchive",
    "archive_key",
    "open_archives",
    "open_blob_store",
    "resolve_metadata",
    "validate_key",
]
