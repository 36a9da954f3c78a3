"""What only the Azure store promises: no secrets in reprs, opaque bytes, bounded failures."""

from __future__ import annotations

import asyncio
import gzip
import sys
import time
from collections.abc import AsyncIterator

import pytest
from azure.storage.blob.aio import BlobServiceClient

from execstore.blob import AzureBlobStore
from execstore.errors import ArchiveConflict, BlobStoreError, ConfigurationError
from support.azurite import ACCOUNT_KEY, AzuriteServer, connection_string, free_port

# Tests that talk to Azurite carry the ``azurite`` marker; the rest never open a
# connection to it (support.azurite checks the marker both ways).


def nowhere() -> str:
    """An account endpoint on a port nobody listens on."""
    return f"http://127.0.0.1:{free_port()}/devstoreaccount1"


@pytest.fixture
async def azure_blobs(azurite: AzuriteServer) -> AsyncIterator[AzureBlobStore]:
    store = AzureBlobStore(
        azurite.new_container_name(), connection_string=azurite.connection_string
    )
    yield store
    await store.close()


async def test_repr_and_errors_never_show_secrets() -> None:
    # Building a store sends nothing: no Azurite needed to check what it prints.
    store = AzureBlobStore("c-secret", connection_string=connection_string(nowhere()))
    sas = AzureBlobStore("c-secret", account_url=f"{nowhere()}?sv=2023-01-03&sig=TOPSECRETSIG")
    try:
        for text in (repr(store), str(store), repr(sas)):
            assert ACCOUNT_KEY not in text
            assert ACCOUNT_KEY[:12] not in text
            assert "TOPSECRETSIG" not in text
            assert "c-secret" in text
    finally:
        await store.close()
        await sas.close()
    with pytest.raises(ConfigurationError) as caught:
        AzureBlobStore("cont", connection_string="AccountKey=" + ACCOUNT_KEY)
    assert ACCOUNT_KEY not in str(caught.value)


@pytest.mark.azurite
async def test_compressed_bytes_stay_compressed(
    azure_blobs: AzureBlobStore, azurite: AzuriteServer
) -> None:
    payload = gzip.compress(b'{"a":1}\n' * 1000, mtime=0)
    await azure_blobs.put("x.ndjson.gz", payload)
    assert await azure_blobs.get("x.ndjson.gz") == payload
    assert b"".join([c async for c in azure_blobs.stream("x.ndjson.gz")]) == payload
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as svc:
        blob = svc.get_blob_client(azure_blobs.container_name, "x.ndjson.gz")
        props = await blob.get_blob_properties()
        assert props.content_settings.content_encoding is None  # or the SDK would gunzip it


@pytest.mark.azurite
async def test_a_foreign_blob_without_sha_metadata_is_compared_by_content(
    azure_blobs: AzureBlobStore, azurite: AzuriteServer
) -> None:
    await azure_blobs.put("seed", b"x")  # creates the container
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as svc:
        blob = svc.get_blob_client(azure_blobs.container_name, "foreign")
        await blob.upload_blob(b"written by another tool")
    assert not (await azure_blobs.put("foreign", b"written by another tool")).created
    with pytest.raises(ArchiveConflict):
        await azure_blobs.put("foreign", b"something else")


@pytest.mark.azurite
async def test_wrong_account_key_is_a_blob_store_error(azurite: AzuriteServer) -> None:
    bad_key = "A" * 86 + "=="
    conn = azurite.connection_string.replace(ACCOUNT_KEY, bad_key)
    store = AzureBlobStore(azurite.new_container_name(), connection_string=conn, max_retries=0)
    try:
        with pytest.raises(BlobStoreError) as caught:
            await store.put("k", b"x")
        assert bad_key not in str(caught.value)
    finally:
        await store.close()


async def test_unreachable_service_fails_fast() -> None:
    store = AzureBlobStore(
        "nobody-home",
        connection_string=connection_string(nowhere()),
        max_retries=1,
        retry_backoff_seconds=0.01,
        timeout_seconds=2,
    )
    started = time.monotonic()
    try:
        with pytest.raises(BlobStoreError):
            await store.get("k")
    finally:
        await store.close()
    assert time.monotonic() - started < 10


async def test_a_silent_server_times_out_instead_of_hanging() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def swallow(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # accept, read nothing, answer nothing

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = AzureBlobStore(
        "silent",
        connection_string=connection_string(f"http://127.0.0.1:{port}/devstoreaccount1"),
        max_retries=0,
        timeout_seconds=1,
    )
    started = time.monotonic()
    try:
        with pytest.raises(BlobStoreError):
            await asyncio.wait_for(store.get("k"), timeout=30)
    finally:
        await store.close()
        for writer in accepted:
            writer.transport.abort()
        server.close()
        await server.wait_closed()
    assert time.monotonic() - started < 10


def test_missing_sdk_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.storage.blob", None)
    monkeypatch.setitem(sys.modules, "azure.storage.blob.aio", None)
    with pytest.raises(ConfigurationError, match=r"execstore\[azure\]"):
        AzureBlobStore("some-container", connection_string="UseDevelopmentStorage=true")


@pytest.mark.parametrize("name", ["ab", "Upper", "under_score", "-lead", "a--b", "x" * 64])
def test_invalid_container_names(name: str) -> None:
    with pytest.raises(ConfigurationError, match="container"):
        AzureBlobStore(name, connection_string="UseDevelopmentStorage=true")
