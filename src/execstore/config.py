"""Settings: one ``BaseSettings`` read from ``EXECSTORE_*`` environment variables.

Invalid values fail at start-up with a :class:`~execstore.errors.ConfigurationError`
whose message names the setting (``EXECSTORE_CACHE_BYTES``, not a pydantic path; the
command-line option, ``--url``, where the value came from one). What cannot work fails
there too rather than at the first write: the zstd codec without the ``zstandard``
package, an ``azure://`` blob store without ``azure-storage-blob``. An ``EXECSTORE_*``
variable that names no setting (a misspelling, ``EXECSTORE_LOG_HOT_DAY``) is reported
with an :class:`UnknownSettingWarning`, with the closest setting's name. A plain
``postgresql://`` (or ``postgres://``) URL means asyncpg, a plain ``sqlite:///path`` means
aiosqlite: both are rewritten to the async driver's URL.
"""

from __future__ import annotations

import difflib
import enum
import importlib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from execstore.errors import ConfigurationError

__all__ = [
    "AUDIT_RETENTION_FLOOR_DAYS",
    "Codec",
    "LogPartitionMode",
    "RagMode",
    "Settings",
    "UnknownSettingWarning",
    "load_settings",
]

DEFAULT_HOME = Path(".execstore")

TOOLING_VARIABLES = ("EXECSTORE_TEST_", "EXECSTORE_CITUS_", "EXECSTORE_CACHE_DIR")
"""Prefixes of the variables the project's own scripts and tests read (not settings)."""

_ASYNC_DRIVERS = {
    "postgresql://": "postgresql+asyncpg://",
    "postgres://": "postgresql+asyncpg://",
    "sqlite://": "sqlite+aiosqlite://",
}


class UnknownSettingWarning(UserWarning):
    """An ``EXECSTORE_*`` environment variable that names no setting (and is ignored)."""


AUDIT_RETENTION_FLOOR_DAYS = 6 * 365 + 2
"""2192 days: the longest six calendar years can be (two leap days), so a retention of at
least this many days keeps every audit record at least six years from its creation
(HIPAA, 45 CFR 164.316(b)(2)), whatever day it was created."""


class RagMode(enum.StrEnum):
    """The RAG tables' switch-over, one step at a time (see DESIGN.md, Migrations)."""

    LEGACY = "legacy"  # write and read the legacy JSON table only
    DUAL_WRITE_READ_LEGACY = "dual_write_read_legacy"  # write both, read legacy
    # write both, read normalized, compare a sample with legacy (EXECSTORE_RAG_SHADOW_SAMPLE_RATE)
    DUAL_WRITE_READ_NORMALIZED = "dual_write_read_normalized"
    NORMALIZED = "normalized"  # normalized tables only

    @property
    def uses_legacy_table(self) -> bool:
        """Whether this mode reads or writes ``execution_rag_rules_legacy``."""
        return self is not RagMode.NORMALIZED


class LogPartitionMode(enum.StrEnum):
    """Who keeps the log table's monthly partitions coming (PostgreSQL)."""

    NATIVE = "native"  # execstore maintain creates them; no DEFAULT partition
    PARTMAN = "partman"  # pg_partman 4.x registers and maintains them (with its DEFAULT)


class Codec(enum.StrEnum):
    """Compression for archive blobs: the one codec enum (settings, refs, pointer rows).

    Settings and blob metadata name it (``gzip``); a pointer row's ``codec`` column stores
    its :attr:`code`, a ``smallint``.
    """

    GZIP = "gzip"
    ZSTD = "zstd"

    @property
    def code(self) -> int:
        """The number a pointer row stores for this codec."""
        return _CODEC_CODES[self]

    @classmethod
    def of(cls, value: Codec | str | int) -> Codec:
        """The codec ``value`` stands for: a Codec, its name or its :attr:`code`."""
        if isinstance(value, str):
            return cls(value)
        for codec, code in _CODEC_CODES.items():
            if code == value:
                return codec
        raise ValueError(f"no archive codec has the code {value!r}")


_CODEC_CODES: Final = {Codec.GZIP: 1, Codec.ZSTD: 2}


class Settings(BaseSettings):
    """Everything execstore can be told, with the embedded defaults."""

    model_config = SettingsConfigDict(
        env_prefix="EXECSTORE_", extra="ignore", frozen=True, validate_default=True
    )

    database_url: str = Field(
        default=f"sqlite+aiosqlite:///{DEFAULT_HOME / 'execstore.db'}",
        description="SQLAlchemy async URL: postgresql+asyncpg://... or sqlite+aiosqlite:///path",
    )
    blob_url: str = Field(
        default=f"file:{DEFAULT_HOME / 'blobs'}",
        description="file:/path for a local directory, or azure://<container> with credentials",
    )
    azure_connection_string: SecretStr | None = None
    azure_account_url: str | None = None
    azure_credential: SecretStr | None = None
    azure_timeout_seconds: float = Field(default=30.0, gt=0)
    azure_max_retries: int = Field(default=3, ge=0, le=10)

    pool_size: int = Field(default=5, ge=1, le=200)
    max_overflow: int = Field(default=10, ge=0, le=500)
    pool_timeout_seconds: float = Field(default=30.0, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0)
    echo_sql: bool = False

    rag_mode: RagMode = RagMode.NORMALIZED
    rag_shadow_sample_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Share of dual_write_read_normalized reads also compared with legacy",
    )
    archive_codec: Codec = Codec.GZIP
    log_hot_days: int = Field(default=30, ge=1, le=3650)
    log_retention_days: int = Field(default=365, ge=1, le=36500)
    log_partition_mode: LogPartitionMode = LogPartitionMode.NATIVE
    log_months_ahead: int = Field(default=3, ge=1, le=60)
    log_archive_chunk_rows: int = Field(default=2000, ge=1, le=1_000_000)
    audit_hot_days: int = Field(default=90, ge=1, le=3650)
    audit_retention_days: int = Field(default=AUDIT_RETENTION_FLOOR_DAYS, le=36500)
    audit_checkpoint_hours: int = Field(default=24, ge=1, le=24)
    cache_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    screenshot_base_url: str | None = Field(
        default=None,
        description="Screenshot URLs are base + '{org}/{job}/' + a stored key suffix",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        for plain, driver in _ASYNC_DRIVERS.items():
            if value.startswith(plain):
                value = driver + value[len(plain) :]
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError("must start with postgresql+asyncpg:// or sqlite+aiosqlite://")
        return value

    @field_validator("blob_url")
    @classmethod
    def _known_blob_store(cls, value: str) -> str:
        if not value.startswith(("file:", "azure://")):
            raise ValueError("must be file:/path or azure://<container>")
        return value

    @field_validator("audit_retention_days")
    @classmethod
    def _six_years_at_least(cls, value: int) -> int:
        if value < AUDIT_RETENTION_FLOOR_DAYS:
            raise ValueError(
                f"{value} days is shorter than six years: PHI audit records must be kept at "
                f"least six years (45 CFR 164.316(b)(2)); the minimum is "
                f"{AUDIT_RETENTION_FLOOR_DAYS} days (six years including two leap days)"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.log_retention_days < self.log_hot_days:
            raise ValueError("log_retention_days must not be shorter than log_hot_days")
        if self.blob_url.startswith("azure://") and not (
            self.azure_connection_string or self.azure_account_url
        ):
            raise ValueError(
                "blob_url is azure:// but neither EXECSTORE_AZURE_CONNECTION_STRING "
                "nor EXECSTORE_AZURE_ACCOUNT_URL is set"
            )
        if self.blob_url.startswith("azure://") and not _importable("azure.storage.blob.aio"):
            raise ValueError(
                "blob_url is azure:// but the azure-storage-blob package is not installed "
                "(pip install 'execstore[azure]')"
            )
        if self.archive_codec is Codec.ZSTD and not _importable("zstandard"):
            raise ValueError(
                "archive_codec is zstd but the zstandard package is not installed "
                "(pip install 'execstore[zstd]', or EXECSTORE_ARCHIVE_CODEC=gzip)"
            )
        return self

    @property
    def dialect(self) -> str:
        """``postgresql`` or ``sqlite``."""
        return "postgresql" if self.database_url.startswith("postgresql") else "sqlite"


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def unknown_variables(environ: Mapping[str, str] | None = None) -> dict[str, str | None]:
    """Each ``EXECSTORE_*`` variable of ``environ`` that names no setting, with the closest
    setting's variable (None when nothing is close)."""
    known = [f"EXECSTORE_{name.upper()}" for name in Settings.model_fields]
    found: dict[str, str | None] = {}
    for key in os.environ if environ is None else environ:
        upper = key.upper()
        if not upper.startswith("EXECSTORE_") or upper in known:
            continue
        if upper.startswith(TOOLING_VARIABLES):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.75)
        found[key] = close[0] if close else None
    return found


def load_settings(*, labels: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from the environment (plus ``overrides``), or raise ConfigurationError.

    ``labels`` names where an override came from (``{"database_url": "--url"}``), for the
    error message; other settings are named by their environment variable. Unknown
    ``EXECSTORE_*`` variables are reported with an :class:`UnknownSettingWarning`.
    """
    for variable, close in unknown_variables().items():
        hint = f" (did you mean {close}?)" if close else ""
        warnings.warn(
            f"{variable} is not an execstore setting and is ignored{hint}",
            UnknownSettingWarning,
            stacklevel=2,
        )
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err.get("loc") or ()
            field = str(loc[0]) if loc else ""
            if field in overrides and labels and field in labels:
                name = labels[field]
            elif field in overrides:
                name = field
            else:
                name = f"EXECSTORE_{field.upper()}" if field else "settings"
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message}")
        raise ConfigurationError("invalid settings: " + "; ".join(problems)) from exc
