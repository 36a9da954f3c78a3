"""Build the blob store (and the archives facade) that the settings describe."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from execstore.blob.archives import Archives
from execstore.blob.base import BlobStore
from execstore.blob.cache import ArchiveCache
from execstore.blob.local import LocalBlobStore
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.config import Settings
from execstore.errors import ConfigurationError

__all__ = ["open_archives", "open_blob_store"]


def open_blob_store(settings: Settings) -> BlobStore:
    """The BlobStore for ``settings.blob_url`` (``file:...`` or ``azure://<container>``)."""
    url = settings.blob_url
    if url.startswith("file:"):
        return LocalBlobStore(local_path(url))
    if url.startswith("azure://"):
        container = url.removeprefix("azure://").rstrip("/")
        from execstore.blob.azure import AzureBlobStore

        connection = settings.azure_connection_string
        credential = settings.azure_credential
        return AzureBlobStore(
            container,
            connection_string=connection.get_secret_value() if connection else None,
            account_url=settings.azure_account_url,
            credential=_azure_credential(credential.get_secret_value()) if credential else None,
            timeout_seconds=settings.azure_timeout_seconds,
            max_retries=settings.azure_max_retries,
        )
    raise ConfigurationError("EXECSTORE_BLOB_URL must be file:/path or azure://<container>")


def open_archives(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> Archives:
    """Archives on the configured store, codec and a cache of ``settings.cache_bytes``."""
    cache = ArchiveCache(settings.cache_bytes) if settings.cache_bytes > 0 else None
    return Archives(
        open_blob_store(settings), cache=cache, codec=settings.archive_codec, clock=clock
    )


def _azure_credential(value: str) -> Any:
    """A SAS token (it has a ``sig=``) as AzureSasCredential; anything else is an account key."""
    if "sig=" in value:
        from azure.core.credentials import AzureSasCredential

        return AzureSasCredential(value.lstrip("?"))
    # The SDK turns a plain string into a shared-key credential for the URL's account.
    return value


def local_path(url: str) -> Path:
    """The directory of a ``file:`` URL: ``file:rel/dir``, ``file:/abs`` or ``file:///abs``."""
    rest = url.removeprefix("file:")
    if rest.startswith("//"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(
                f"EXECSTORE_BLOB_URL: file URLs on another host ({parts.netloc!r}) "
                "are not supported"
            )
        rest = unquote(parts.path)
    if not rest:
        raise ConfigurationError("EXECSTORE_BLOB_URL: file: needs a directory path")
    return Path(rest).expanduser()
