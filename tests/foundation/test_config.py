"""Settings fail at start-up with a message naming the setting."""

from __future__ import annotations

import pytest

from execstore.config import Codec, RagMode, load_settings
from execstore.errors import ConfigurationError


def test_defaults_are_the_embedded_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EXECSTORE_DATABASE_URL", "EXECSTORE_BLOB_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.blob_url.startswith("file:")
    assert settings.cache_bytes == 64 * 1024 * 1024
    assert settings.archive_codec is Codec.GZIP
    assert settings.rag_mode is RagMode.NORMALIZED


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECSTORE_CACHE_BYTES", "1024")
    monkeypatch.setenv("EXECSTORE_RAG_MODE", "dual_write_read_legacy")
    settings = load_settings()
    assert settings.cache_bytes == 1024
    assert settings.rag_mode is RagMode.DUAL_WRITE_READ_LEGACY


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("EXECSTORE_CACHE_BYTES", "-1", "EXECSTORE_CACHE_BYTES"),
        ("EXECSTORE_DATABASE_URL", "mysql://x", "EXECSTORE_DATABASE_URL"),
        ("EXECSTORE_BLOB_URL", "s3://bucket", "EXECSTORE_BLOB_URL"),
        ("EXECSTORE_POOL_SIZE", "zero", "EXECSTORE_POOL_SIZE"),
        ("EXECSTORE_RAG_MODE", "sometimes", "EXECSTORE_RAG_MODE"),
        ("EXECSTORE_RAG_MODE", "dual_read_legacy", "EXECSTORE_RAG_MODE"),
        ("EXECSTORE_RAG_SHADOW_SAMPLE_RATE", "1.5", "EXECSTORE_RAG_SHADOW_SAMPLE_RATE"),
    ],
)
def test_invalid_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigurationError, match=named):
        load_settings()


def test_azure_without_credentials_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="AZURE"):
        load_settings(blob_url="azure://results")


def test_retention_shorter_than_hot_window_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="log_retention_days"):
        load_settings(log_hot_days=60, log_retention_days=30)
