"""open_blob_store / open_archives: settings in, the right store out."""

from __future__ import annotations

from pathlib import Path

import pytest

from execstore.blob import (
    ArchiveCache,
    AzureBlobStore,
    LocalBlobStore,
    open_archives,
    open_blob_store,
)
from execstore.config import Codec, load_settings
from execstore.errors import ConfigurationError
from support.azurite import AzuriteServer


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("file:/srv/blobs", Path("/srv/blobs")),
        ("file:///srv/blobs", Path("/srv/blobs")),
        ("file://localhost/srv/blobs", Path("/srv/blobs")),
        ("file:relative/blobs", Path("relative/blobs")),
        ("file:///srv/with%20space", Path("/srv/with space")),
    ],
)
def test_file_urls(url: str, expected: Path) -> None:
    store = open_blob_store(load_settings(blob_url=url))
    assert isinstance(store, LocalBlobStore)
    assert store.root == expected


@pytest.mark.parametrize("url", ["file:", "file://otherhost/x"])
def test_bad_file_urls(url: str) -> None:
    with pytest.raises(ConfigurationError, match="EXECSTORE_BLOB_URL"):
        open_blob_store(load_settings(blob_url=url))


def test_open_archives_uses_codec_and_cache_size(tmp_path: Path) -> None:
    settings = load_settings(blob_url=f"file:{tmp_path}", archive_codec="zstd", cache_bytes=1234)
    archives = open_archives(settings)
    assert archives.codec is Codec.ZSTD
    assert isinstance(archives.cache, ArchiveCache)
    assert archives.cache.max_bytes == 1234
    assert open_archives(load_settings(blob_url=f"file:{tmp_path}", cache_bytes=0)).cache is None


def test_invalid_container_is_a_configuration_error() -> None:
    settings = load_settings(
        blob_url="azure://Bad_Name", azure_connection_string="UseDevelopmentStorage=true"
    )
    with pytest.raises(ConfigurationError, match="container"):
        open_blob_store(settings)


@pytest.mark.azurite
async def test_azure_url_with_connection_string(azurite: AzuriteServer) -> None:
    settings = load_settings(
        blob_url=f"azure://{azurite.new_container_name()}",
        azure_connection_string=azurite.connection_string,
        azure_timeout_seconds=5,
        azure_max_retries=1,
    )
    store = open_blob_store(settings)
    try:
        assert isinstance(store, AzureBlobStore)
        await store.put("k", b"v")
        assert await store.get("k") == b"v"
    finally:
        await store.close()


@pytest.mark.azurite
async def test_azure_url_with_account_url_and_key(azurite: AzuriteServer) -> None:
    from support.azurite import ACCOUNT_KEY

    settings = load_settings(
        blob_url=f"azure://{azurite.new_container_name()}",
        azure_account_url=azurite.blob_endpoint,
        azure_credential=ACCOUNT_KEY,
    )
    store = open_blob_store(settings)
    try:
        await store.put("k", b"v")
        assert await store.get("k") == b"v"
    finally:
        await store.close()


@pytest.mark.azurite
async def test_azure_wrong_account_key_is_refused(azurite: AzuriteServer) -> None:
    from execstore.errors import BlobStoreError

    settings = load_settings(
        blob_url=f"azure://{azurite.new_container_name()}",
        azure_account_url=azurite.blob_endpoint,
        azure_credential="A" * 86 + "==",
        azure_max_retries=0,
    )
    store = open_blob_store(settings)
    try:
        with pytest.raises(BlobStoreError):
            await store.put("k", b"v")
    finally:
        await store.close()


def test_sas_credential_is_passed_as_sas() -> None:
    from azure.core.credentials import AzureSasCredential

    from execstore.blob.factory import _azure_credential

    assert isinstance(_azure_credential("?sv=2023-01-03&sig=abc"), AzureSasCredential)
    assert _azure_credential("accountkey==") == "accountkey=="
