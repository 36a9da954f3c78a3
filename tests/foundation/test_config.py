"""Settings fail at start-up with a message naming the setting."""

from __future__ import annotations

import sys
import warnings

import pytest

from execstore.config import Codec, RagMode, UnknownSettingWarning, load_settings
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


def test_zstd_without_its_package_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if not installed
    monkeypatch.setenv("EXECSTORE_ARCHIVE_CODEC", "zstd")
    with pytest.raises(ConfigurationError, match=r"zstandard package is not installed"):
        load_settings()
    monkeypatch.setenv("EXECSTORE_ARCHIVE_CODEC", "gzip")
    assert load_settings().archive_codec == "gzip"


def test_azure_without_its_package_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "azure.storage.blob.aio", None)
    with pytest.raises(ConfigurationError, match=r"azure-storage-blob package is not installed"):
        load_settings(blob_url="azure://results", azure_account_url="https://a.example")


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("postgresql://u@db:5432/x", "postgresql+asyncpg://u@db:5432/x"),
        ("postgres://u@db/x", "postgresql+asyncpg://u@db/x"),
        ("sqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
        ("postgresql+asyncpg://u@db/x", "postgresql+asyncpg://u@db/x"),
    ],
)
def test_plain_urls_mean_the_async_drivers(given: str, meant: str) -> None:
    assert load_settings(database_url=given).database_url == meant


def test_an_unknown_variable_is_named_with_the_closest_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXECSTORE_LOG_HOT_DAY", "10")
    monkeypatch.setenv("EXECSTORE_NOTHING_LIKE_IT", "1")
    monkeypatch.setenv("EXECSTORE_TEST_DATABASE_URL", "postgresql://x")  # tooling, not a setting
    with pytest.warns(UnknownSettingWarning) as caught:
        settings = load_settings()
    messages = sorted(str(w.message) for w in caught)
    assert messages == [
        "EXECSTORE_LOG_HOT_DAY is not an execstore setting and is ignored "
        "(did you mean EXECSTORE_LOG_HOT_DAYS?)",
        "EXECSTORE_NOTHING_LIKE_IT is not an execstore setting and is ignored",
    ]
    assert settings.log_hot_days == 30


def test_known_variables_raise_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECSTORE_LOG_HOT_DAYS", "10")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_settings().log_hot_days == 10


def test_an_override_is_named_by_its_label() -> None:
    with pytest.raises(ConfigurationError, match=r"invalid settings: --url: must start with"):
        load_settings(labels={"database_url": "--url"}, database_url="mysql://x")
    with pytest.raises(ConfigurationError, match=r"invalid settings: database_url: must start"):
        load_settings(database_url="mysql://x")
