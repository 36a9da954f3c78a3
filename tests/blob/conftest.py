"""Blob-store backends for the conformance suite, each with its own way to break things.

``blob_backend`` parametrizes a test over the local directory store and the Azure store on
Azurite. Each backend can corrupt a stored blob behind the store's back (a flipped byte
on disk, or a raw SDK overwrite) and can hand out a store whose downloads fail half-way
(a failing disk for the local store, a real TCP connection cut for Azure).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any, Protocol

import pytest

from execstore.blob import AzureBlobStore, BlobStore, LocalBlobStore
from support.azurite import AzuriteServer, connection_string

BLOB_BACKENDS = [
    pytest.param("local", id="local"),
    pytest.param("azurite", marks=pytest.mark.azurite, id="azurite"),
]


class BlobBackend(Protocol):
    name: str
    store: BlobStore

    async def corrupt(self, key: str) -> None: ...
    async def dropping_store(self, after_bytes: int) -> BlobStore: ...
    def interruptions(self) -> int: ...
    async def close(self) -> None: ...


# -- local ---------------------------------------------------------------------------


class _FailingRead:
    """A file handle whose reads fail with EIO once ``budget`` bytes have been read."""

    def __init__(self, handle: IO[bytes], budget: int, store: _FailingDiskStore) -> None:
        self._handle = handle
        self._budget = budget
        self._store = store

    def read(self, size: int = -1) -> bytes:
        if self._budget <= 0 and self._handle.read(1):
            self._fail()
        data = self._handle.read(self._budget if size < 0 else min(size, self._budget))
        self._budget -= len(data)
        if size < 0 and self._handle.read(1):
            self._fail()
        return data

    def _fail(self) -> None:
        self._store.failures += 1
        raise OSError(errno.EIO, "Input/output error")

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> _FailingRead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _FailingDiskStore(LocalBlobStore):
    """The local store on a disk that starts failing reads after ``after_bytes``."""

    def __init__(self, root: Path, after_bytes: int) -> None:
        super().__init__(root)
        self.after_bytes = after_bytes
        self.failures = 0

    def _open_read(self, key: str) -> Any:
        return _FailingRead(super()._open_read(key), self.after_bytes, self)


class LocalBackend:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = LocalBlobStore(root)
        self._failing: list[_FailingDiskStore] = []

    async def corrupt(self, key: str) -> None:
        path = self.root.joinpath(*key.split("/"))
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))

    async def dropping_store(self, after_bytes: int) -> BlobStore:
        self._failing.append(_FailingDiskStore(self.root, after_bytes))
        return self._failing[-1]

    def interruptions(self) -> int:
        return sum(store.failures for store in self._failing)

    async def close(self) -> None:
        await self.store.close()


# -- azure -----------------------------------------------------------------------------


class CuttingProxy:
    """A TCP proxy to Azurite that kills every connection after ``after_bytes`` of response."""

    def __init__(self, target_port: int, after_bytes: int) -> None:
        self.target_port = target_port
        self.after_bytes = after_bytes
        self.connections = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self.connections += 1
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def upstream() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await client_r.read(65536):
                    up_w.write(data)
                    await up_w.drain()

        async def downstream() -> None:
            sent = 0
            with contextlib.suppress(ConnectionError):
                while data := await up_r.read(65536):
                    if sent + len(data) >= self.after_bytes:
                        client_w.write(data[: self.after_bytes - sent])
                        await client_w.drain()
                        self.cuts += 1
                        return
                    client_w.write(data)
                    await client_w.drain()
                    sent += len(data)

        pump = asyncio.ensure_future(upstream())
        try:
            await downstream()
        finally:
            pump.cancel()
            client_w.transport.abort()  # a hard cut, not a polite close
            up_w.transport.abort()
            self._tasks.discard(task)  # type: ignore[arg-type]


def make_azure_store(endpoint: str, container: str, **options: Any) -> AzureBlobStore:
    options.setdefault("max_retries", 1)
    options.setdefault("retry_backoff_seconds", 0.05)
    options.setdefault("timeout_seconds", 10)
    return AzureBlobStore(container, connection_string=connection_string(endpoint), **options)


class AzureBackend:
    name = "azurite"

    def __init__(self, azurite: AzuriteServer) -> None:
        self.azurite = azurite
        self.container = azurite.new_container_name()
        self.store = make_azure_store(azurite.blob_endpoint, self.container)
        self._extra: list[Any] = []
        self._proxies: list[CuttingProxy] = []

    async def corrupt(self, key: str) -> None:
        from azure.storage.blob.aio import BlobServiceClient

        async with BlobServiceClient.from_connection_string(self.azurite.connection_string) as svc:
            blob = svc.get_blob_client(self.container, key)
            props = await blob.get_blob_properties()
            data = bytearray(await (await blob.download_blob(decompress=False)).readall())
            data[len(data) // 2] ^= 0x01
            # Overwrite behind the store's back, keeping the recorded sha256 metadata.
            await blob.upload_blob(bytes(data), overwrite=True, metadata=props.metadata)

    async def dropping_store(self, after_bytes: int) -> BlobStore:
        proxy = CuttingProxy(self.azurite.port, after_bytes)
        port = await proxy.start()
        store = make_azure_store(f"http://127.0.0.1:{port}/devstoreaccount1", self.container)
        self._extra += [store, proxy]
        self._proxies.append(proxy)
        return store

    def interruptions(self) -> int:
        return sum(proxy.cuts for proxy in self._proxies)

    async def close(self) -> None:
        for item in reversed(self._extra):
            await item.close()
        from azure.storage.blob.aio import BlobServiceClient

        async with BlobServiceClient.from_connection_string(self.azurite.connection_string) as svc:
            with contextlib.suppress(Exception):
                await svc.delete_container(self.container)
        await self.store.close()


@pytest.fixture(params=BLOB_BACKENDS)
async def blob_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BlobBackend]:
    backend: LocalBackend | AzureBackend
    if request.param == "local":
        backend = LocalBackend(tmp_path / "blobs")
    else:
        backend = AzureBackend(request.getfixturevalue("azurite"))
    try:
        yield backend
    finally:
        await backend.close()


@pytest.fixture
def blob_store(blob_backend: BlobBackend) -> BlobStore:
    return blob_backend.store
