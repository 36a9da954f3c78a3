"""A blob store on Azure Blob Storage (``azure.storage.blob.aio``), create-only.

Uploads carry ``If-None-Match: *`` (a single Put Blob for small payloads, staged blocks
committed with the same condition for large streams), so an existing key is never
overwritten. The sha256 of the stored bytes goes into the blob's metadata; when a put
finds the key taken it compares digests: the same bytes are a no-op, different bytes an
:class:`~execstore.errors.ArchiveConflict`.

Blobs are stored and fetched as opaque bytes: no ``Content-Encoding`` on upload and
``decompress=False`` on download, so the SDK never gunzips an archive behind our back.

The SDK is imported when a store is built, not when this module is, so execstore works
without the ``azure`` extra until an ``azure://`` blob URL is actually used.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import hashlib
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from execstore.blob.base import SHA256_METADATA, BlobInfo, Metadata, PutResult, resolve_metadata
from execstore.blob.keys import validate_key
from execstore.errors import (
    ArchiveConflict,
    ArchiveMissing,
    BlobStoreError,
    ConfigurationError,
    ExecstoreError,
)

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobClient, BlobServiceClient, ContainerClient

__all__ = ["AzureBlobStore"]

# One size for upload blocks and download ranges: large enough that a typical archive is
# one request, small enough that streaming a huge blob holds only a few MiB at a time.
DEFAULT_BLOCK_SIZE: Final = 4 * 1024 * 1024

# Azure's container naming rules: 3-63 of lowercase letters, digits and single hyphens.
_CONTAINER_NAME: Final = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")


def _import_azure() -> Any:
    try:
        from azure.storage.blob import aio
    except ImportError as exc:
        raise ConfigurationError(
            "EXECSTORE_BLOB_URL is azure://... but azure-storage-blob is not installed "
            "(pip install 'execstore[azure]')"
        ) from exc
    return aio


class AzureBlobStore:
    """Write-once blobs in one Azure container (created on first write if missing)."""

    def __init__(
        self,
        container: str,
        *,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: Any = None,
        timeout_seconds: float = 30.0,
        max_retries: int = 3,
        retry_backoff_seconds: float = 0.5,
        block_size: int = DEFAULT_BLOCK_SIZE,
    ) -> None:
        if not _CONTAINER_NAME.fullmatch(container):
            raise ConfigurationError(
                f"EXECSTORE_BLOB_URL: {container!r} is not a valid Azure container name "
                "(3-63 lowercase letters, digits and single hyphens)"
            )
        aio = _import_azure()
        retry = aio.ExponentialRetry(
            initial_backoff=retry_backoff_seconds,
            increment_base=2,
            retry_total=max_retries,
            random_jitter_range=retry_backoff_seconds / 2,
        )
        options: dict[str, Any] = {
            "retry_policy": retry,
            "connection_timeout": timeout_seconds,
            "read_timeout": timeout_seconds,
            "max_single_get_size": block_size,
            "max_chunk_get_size": block_size,
            "max_single_put_size": block_size,
            "max_block_size": block_size,
        }
        try:
            if connection_string:
                service = aio.BlobServiceClient.from_connection_string(connection_string, **options)
            elif account_url:
                service = aio.BlobServiceClient(account_url, credential=credential, **options)
            else:
                raise ConfigurationError(
                    "azure blob store needs EXECSTORE_AZURE_CONNECTION_STRING "
                    "or EXECSTORE_AZURE_ACCOUNT_URL"
                )
        except ExecstoreError:
            raise
        except ValueError as exc:
            # Never echo the connection string: it holds the account key.
            raise ConfigurationError(
                "EXECSTORE_AZURE_CONNECTION_STRING / EXECSTORE_AZURE_ACCOUNT_URL is malformed"
            ) from exc
        self._service: BlobServiceClient = service
        self._container: ContainerClient = service.get_container_client(container)
        self.container_name = container
        self.account_name: str = service.account_name or ""
        self.block_size = block_size
        self._container_ready = False
        self._container_lock = asyncio.Lock()

    def __repr__(self) -> str:
        # The endpoint without its query string: a SAS token lives there.
        parts = urlsplit(self._service.url)
        endpoint = f"{parts.scheme}://{parts.netloc}{parts.path}"
        return f"AzureBlobStore(container={self.container_name!r}, endpoint={endpoint!r})"

    __str__ = __repr__

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        metadata: Metadata = None,
    ) -> PutResult:
        """A PutResult; created=False when ``key`` already holds these exact bytes."""
        validate_key(key)
        await self._ensure_container()
        blob = self._container.get_blob_client(key)
        try:
            with _translate(key):
                if isinstance(data, bytes | bytearray | memoryview):
                    payload = bytes(data)
                    if len(payload) <= self.block_size:
                        sha = hashlib.sha256(payload).digest()
                        await self._upload_small(blob, payload, sha, resolve_metadata(metadata))
                        return PutResult(key=key, size=len(payload), sha256=sha, created=True)
                    # Large bytes take the same staged, create-only path as a stream.
                    data = _single(payload)
                sha, size = await self._upload_stream(blob, data, metadata)
                return PutResult(key=key, size=size, sha256=sha, created=True)
        except _KeyTaken as taken:
            sha, size = taken.sha256, taken.size
        with _translate(key):
            existing = await self._stored_sha256(blob)
        if existing != sha:
            raise ArchiveConflict(key)
        return PutResult(key=key, size=size, sha256=sha, created=False)

    async def get(self, key: str) -> bytes:
        """The whole blob's bytes; ArchiveMissing if there is none."""
        blob = self._container.get_blob_client(validate_key(key))
        with _translate(key, missing=True):
            downloader = await blob.download_blob(max_concurrency=1, decompress=False)
            data: bytes = await downloader.readall()
            return data

    async def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """The blob in chunks of at most ``chunk_size`` bytes; ArchiveMissing if absent."""
        blob = self._container.get_blob_client(validate_key(key))
        with _translate(key, missing=True):
            downloader = await blob.download_blob(max_concurrency=1, decompress=False)
            chunks = downloader.chunks()
            while True:
                # The SDK hands out ranges of block_size; slicing keeps the caller's bound.
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    return
                for start in range(0, len(chunk), chunk_size):
                    yield chunk[start : start + chunk_size] if len(chunk) > chunk_size else chunk

    async def exists(self, key: str) -> bool:
        """Whether ``key`` holds a blob."""
        blob = self._container.get_blob_client(validate_key(key))
        with _translate(key):
            result: bool = await blob.exists()
            return result

    async def delete(self, key: str) -> bool:
        """True if ``key`` held a blob that is now removed; False if there was none."""
        blob = self._container.get_blob_client(validate_key(key))
        azure_exc = _azure_exceptions()
        with _translate(key):
            try:
                await blob.delete_blob()
            except azure_exc.ResourceNotFoundError:
                return False
            return True

    async def list(self, prefix: str = "") -> AsyncIterator[BlobInfo]:
        """Every blob whose key starts with ``prefix``, in key order."""
        azure_exc = _azure_exceptions()
        with _translate(prefix):
            try:
                async for props in self._container.list_blobs(
                    name_starts_with=prefix or None, include=["metadata"]
                ):
                    yield BlobInfo(
                        key=props.name, size=int(props.size), metadata=dict(props.metadata or {})
                    )
            except azure_exc.ResourceNotFoundError:
                return  # no container yet: no blobs

    async def sweep_partial(
        self, prefix: str, *, older_than: datetime, dry_run: bool = False
    ) -> builtins.list[str]:
        """Always ``[]``: on Azure a crashed put leaves nothing that needs sweeping.

        A put here is create-only and all-or-nothing: one Put Blob, or staged blocks made
        visible by a single Put Block List. A writer killed before that commit leaves
        only uncommitted blocks: they are not a blob (no get, exists or :meth:`list`
        sees them, and a later put of the key commits its own block list), and the
        service discards uncommitted blocks by itself after 7 days. So there is nothing
        to find or remove, whatever ``prefix``, ``older_than`` and ``dry_run`` say.
        """
        return []

    async def close(self) -> None:
        """Close the HTTP session; the store cannot be used afterwards."""
        await self._service.close()

    # -- internals ---------------------------------------------------------------------

    async def _ensure_container(self) -> None:
        if self._container_ready:
            return
        azure_exc = _azure_exceptions()
        async with self._container_lock:
            if self._container_ready:
                return
            with (
                _translate(self.container_name),
                contextlib.suppress(azure_exc.ResourceExistsError),
            ):
                await self._container.create_container()
            self._container_ready = True

    async def _upload_small(
        self, blob: BlobClient, payload: bytes, sha: bytes, metadata: dict[str, str]
    ) -> None:
        azure_exc = _azure_exceptions()
        try:
            await blob.upload_blob(
                payload,
                overwrite=False,  # sends If-None-Match: *
                metadata={**metadata, SHA256_METADATA: sha.hex()},
                max_concurrency=1,
            )
        except (azure_exc.ResourceExistsError, azure_exc.ResourceModifiedError) as exc:
            raise _KeyTaken(sha, len(payload)) from exc

    async def _upload_stream(
        self, blob: BlobClient, data: AsyncIterable[bytes], metadata: Metadata
    ) -> tuple[bytes, int]:
        """Upload a stream: one Put Blob if it fits a block, else staged blocks + commit."""
        from azure.core import MatchConditions
        from azure.storage.blob import BlobBlock

        sha = hashlib.sha256()
        size = 0
        buffer = bytearray()
        block_ids: list[str] = []
        upload_id = uuid.uuid4().hex

        async def stage(piece: bytes) -> None:
            raw_id = f"{upload_id}-{len(block_ids):08d}".encode()
            block_id = base64.b64encode(raw_id).decode()
            await blob.stage_block(block_id, piece, length=len(piece))
            block_ids.append(block_id)

        async for chunk in data:
            sha.update(chunk)
            size += len(chunk)
            buffer += chunk
            while len(buffer) >= self.block_size:
                await stage(bytes(buffer[: self.block_size]))
                del buffer[: self.block_size]
        digest = sha.digest()
        final_metadata = {**resolve_metadata(metadata), SHA256_METADATA: digest.hex()}
        if not block_ids:
            await self._upload_small(blob, bytes(buffer), digest, resolve_metadata(metadata))
            return digest, size
        if buffer:
            await stage(bytes(buffer))
        azure_exc = _azure_exceptions()
        try:
            await blob.commit_block_list(
                [BlobBlock(block_id=block_id) for block_id in block_ids],
                metadata=final_metadata,
                match_condition=MatchConditions.IfMissing,  # If-None-Match: * (no etag)
            )
        except (azure_exc.ResourceExistsError, azure_exc.ResourceModifiedError) as exc:
            raise _KeyTaken(digest, size) from exc
        return digest, size

    async def _stored_sha256(self, blob: BlobClient) -> bytes:
        props = await blob.get_blob_properties()
        recorded = (props.metadata or {}).get(SHA256_METADATA)
        if recorded:
            return bytes.fromhex(recorded)
        # Written by something else: hash what is actually there.
        sha = hashlib.sha256()
        downloader = await blob.download_blob(max_concurrency=1, decompress=False)
        async for chunk in downloader.chunks():
            sha.update(chunk)
        return sha.digest()


async def _single(payload: bytes) -> AsyncIterator[bytes]:
    yield payload


class _KeyTaken(Exception):
    """Internal: the create-only upload found the key already present."""

    def __init__(self, sha256: bytes, size: int) -> None:
        super().__init__("key taken")
        self.sha256 = sha256
        self.size = size


def _azure_exceptions() -> Any:
    from azure.core import exceptions

    return exceptions


def _transport_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError, TimeoutError]
    with contextlib.suppress(ImportError):
        import aiohttp

        errors.append(aiohttp.ClientError)
    return tuple(errors)


@contextlib.contextmanager
def _translate(key: str, *, missing: bool = False) -> Iterator[None]:
    """Azure SDK and transport errors -> ArchiveMissing or BlobStoreError (never secrets)."""
    azure_exc = _azure_exceptions()
    try:
        yield
    except (ExecstoreError, _KeyTaken):
        raise
    except azure_exc.ResourceNotFoundError as exc:
        if missing:
            raise ArchiveMissing(key) from exc
        raise BlobStoreError(f"azure blob store: not found while handling {key!r}") from exc
    except azure_exc.ClientAuthenticationError as exc:
        raise BlobStoreError(f"azure blob store refused the credentials ({key!r})") from exc
    except azure_exc.AzureError as exc:
        raise BlobStoreError(f"azure blob store failed on {key!r}: {_summary(exc)}") from exc
    except _transport_errors() as exc:
        raise BlobStoreError(f"azure blob store failed on {key!r}: {_summary(exc)}") from exc


def _summary(exc: BaseException) -> str:
    # The first line only: later lines of SDK errors repeat the response, headers included.
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
