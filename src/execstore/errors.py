"""Every error execstore raises, under one root.

    ExecstoreError
    ├── ConfigurationError        settings that cannot work (names the setting)
    ├── NotFound                  no such row for this organization (never "forbidden"):
    │                             ``get``-style reads raise it, ``find`` returns None
    ├── InvalidArgument           a value a caller passed cannot be used (also a ValueError;
    │   │                         nothing was written)
    │   ├── InvalidCursor         a listing cursor execstore did not issue, or for another
    │   │                         listing
    │   ├── InvalidLogEntry       a log line that cannot be stored (names the entry)
    │   ├── InvalidLogQuery       a log read it cannot serve, e.g. an unknown level
    │   ├── InvalidRetention      a retention execstore refuses: shorter than the hot
    │   │                         window, out of range, or under the audit floor
    │   ├── InvalidBlobKey        a blob key breaks the key rules
    │   ├── InvalidJsonValue      a value is not one of the JSON values execstore stores
    │   │                         exactly (names the JSON path)
    │   ├── InvalidAuditRecord    a PHI access record that cannot be stored
    │   └── InvalidRagContext     a RAG context that cannot be stored as given
    ├── Conflict                  a write that would contradict stored data
    │   ├── ArchiveConflict       different bytes at an existing write-once key
    │   └── InvalidTransition     a status change the execution's current status forbids
    ├── ArchiveError              something is wrong with an archive blob
    │   ├── ArchiveMissing        the archive row points at a blob that is not there
    │   └── ArchiveCorrupt        the blob's bytes do not match the recorded sha256
    ├── BlobStoreError            the blob service failed (network, auth, timeout)
    ├── DatabaseError             a driver error, translated in one place
    │   ├── DatabaseUnavailable   the database cannot be reached or opened
    │   └── IntegrityViolation    a constraint refused the write
    └── MigrationError            the schema is not where the code needs it
        ├── MigrationRequired     the database is behind the package's head revision
        ├── DowngradeRefused      going down would lose data
        └── BackfillIncomplete    a contract step refused: its backfill is not done and verified

No other exception leaves a public method on purpose: ``except InvalidArgument`` catches
every refusal of the caller's input (a bad cursor or limit, a lone surrogate, a number out
of range, an unknown mode), ``except ExecstoreError`` everything execstore raises.

Driver errors become these in :func:`translate_database_errors`, always with
``raise ... from exc`` so the original stays on ``__cause__``.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import ValidationError

__all__ = [
    "ArchiveConflict",
    "ArchiveCorrupt",
    "ArchiveError",
    "ArchiveMissing",
    "BackfillIncomplete",
    "BlobStoreError",
    "ConfigurationError",
    "Conflict",
    "DatabaseError",
    "DatabaseUnavailable",
    "DowngradeRefused",
    "ExecstoreError",
    "IntegrityViolation",
    "InvalidArgument",
    "InvalidAuditRecord",
    "InvalidBlobKey",
    "InvalidCursor",
    "InvalidJsonValue",
    "InvalidLogEntry",
    "InvalidLogQuery",
    "InvalidRagContext",
    "InvalidRetention",
    "InvalidTransition",
    "MigrationError",
    "MigrationRequired",
    "NotFound",
    "explain",
    "first_line",
    "shown",
    "translate_database_errors",
]


class ExecstoreError(Exception):
    """Root of every error execstore raises on purpose."""


class ConfigurationError(ExecstoreError):
    """The settings cannot work; the message names the setting."""


class NotFound(ExecstoreError):
    """No such row within the caller's organization."""


class InvalidArgument(ExecstoreError, ValueError):
    """A value the caller passed cannot be stored or used; the message names it.

    Raised before anything is written: the parent of every bad-input error.
    """


class InvalidCursor(InvalidArgument):
    """A listing cursor that execstore did not issue, that was altered, or that belongs to
    another listing."""


class InvalidLogEntry(InvalidArgument):
    """A log line that cannot be stored; nothing of its batch was written.

    ``index`` is the entry's position in the batch passed to ``append``.
    """

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"log entry {index}: {reason} (nothing of the batch was written)")
        self.index = index
        self.reason = reason


class InvalidLogQuery(InvalidArgument):
    """A log read execstore cannot serve, e.g. an unknown level (a bad cursor is
    InvalidCursor, a bad limit InvalidArgument)."""


class InvalidRetention(InvalidArgument):
    """A retention execstore refuses: shorter than the hot window, out of range, or
    shorter than the law allows (audit records: six years). Nothing was deleted."""


class Conflict(ExecstoreError):
    """The write contradicts data that is already stored."""


class ArchiveConflict(Conflict):
    """A write-once key already holds different bytes."""

    def __init__(self, key: str) -> None:
        super().__init__(f"blob {key!r} already exists with different content")
        self.key = key


class InvalidBlobKey(InvalidArgument):
    """A blob key (or a part of one) breaks the key rules; the message says which."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"invalid blob key {key!r}: {reason}")
        self.key = key
        self.reason = reason


class InvalidJsonValue(InvalidArgument):
    """A value is not a JSON value (see :mod:`execstore.jsonvalues`); ``path`` says where."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"not a JSON value at {path}: {reason}")
        self.path = path
        self.reason = reason


class InvalidAuditRecord(InvalidArgument):
    """A PHI access record that cannot be stored as given; the message says which field."""


class InvalidRagContext(InvalidArgument):
    """A RAG context that cannot be stored as given (the message says what and where)."""


class InvalidTransition(Conflict):
    """The execution's current status does not allow this change (e.g. start a finished run)."""


class ArchiveError(ExecstoreError):
    """An archive blob cannot be used."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message)
        self.key = key


class ArchiveMissing(ArchiveError):
    """The blob an archive row points at does not exist."""

    def __init__(self, key: str) -> None:
        super().__init__(f"archive blob {key!r} is missing", key=key)


class ArchiveCorrupt(ArchiveError):
    """The blob's bytes do not hash to the recorded sha256 (or do not decode)."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"archive blob {key!r} is corrupt: {detail}", key=key)
        self.detail = detail


class BlobStoreError(ExecstoreError):
    """The blob service failed: network, authentication or timeout."""


class DatabaseError(ExecstoreError):
    """A database driver error, translated."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached or opened: refused, unknown host or database, login."""


class IntegrityViolation(DatabaseError):
    """A constraint (unique, foreign key, not null, check) refused the write."""


class MigrationError(ExecstoreError):
    """The database schema is not where the code needs it."""


class MigrationRequired(MigrationError):
    """The database is behind the package's head revision; run ``execstore db upgrade``."""


class DowngradeRefused(MigrationError):
    """Going down this revision would lose rows that only the newer schema holds."""


class BackfillIncomplete(MigrationError):
    """A contract revision would drop a legacy table whose backfill has not moved and verified
    every row; the message names the command to run."""


@contextmanager
def translate_database_errors() -> Iterator[None]:
    """Re-raise SQLAlchemy/driver errors as execstore errors (the one place this happens)."""
    from sqlalchemy import exc as sa_exc

    try:
        yield
    except ExecstoreError:
        raise
    except sa_exc.IntegrityError as exc:
        raise IntegrityViolation(first_line(exc)) from exc
    except sa_exc.DBAPIError as exc:
        raise DatabaseError(first_line(exc)) from exc
    except sa_exc.SQLAlchemyError as exc:
        raise DatabaseError(first_line(exc)) from exc


def first_line(exc: BaseException) -> str:
    """The first line of a (driver's) error message, unwrapped from SQLAlchemy's."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def explain(exc: BaseException) -> str:
    """One line saying what is wrong with an input: the first validation error, located
    (``field.sub: message (and N more)``), or the first line of any other error."""
    if isinstance(exc, ValidationError):
        errors = exc.errors()
        first = errors[0]
        # Unions add each member's tag to the location: keep only fields and indexes.
        where = ".".join(
            str(p) for p in first.get("loc", ()) if isinstance(p, int) or p.isidentifier()
        )
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return (f"{where}: {first['msg']}" if where else first["msg"]) + more
    return first_line(exc)


_short = reprlib.Repr()
_short.maxlevel = 3
_short.maxstring = 60
_short.maxother = 60


def shown(value: object) -> str:
    """A short repr of any value a caller passed, for an error message; never raises (a
    huge int, deep nesting or a failing ``__repr__`` included)."""
    try:
        return _short.repr(value)
    except Exception:
        return f"<{type(value).__name__}>"
