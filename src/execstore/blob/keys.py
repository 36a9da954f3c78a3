"""Blob keys: validation shared by every backend, and the deterministic archive key.

A key is a '/'-separated relative path. The same rules apply to every backend so that a
key valid on the local directory is valid on Azure and the other way round (the
conformance suite relies on that). Segments starting with '.' are refused because the
local store keeps its temporary files and metadata sidecars under such names.

The character set is one rule for every store: a key is Unicode text in NFC form, and
each character is assigned, visible or a space; refused are

- text not in NFC: "é" as e + U+0301 next to precomposed "é" would be two blobs that
  look identical (Azure and most file systems keep the bytes as given). A non-NFC key
  is refused, never silently rewritten: the caller normalizes and keeps that key;
- noncharacters: U+FDD0..U+FDEF and every U+xxFFFE and U+xxFFFF (Azure stores a key with
  U+FFFE, then fails every listing of that container with HTTP 500);
- controls (Cc: NUL, newline, ...), surrogates (Cs), invisible format characters (Cf:
  U+200B zero-width space, U+202E right-to-left override, U+FEFF, U+200D, ...),
  private-use (Co) and unassigned (Cn, per the running Python's ``unicodedata``)
  code points, and line and paragraph separators (Zl, Zp).

Letters, marks, digits, punctuation, symbols (emoji included) and spaces are allowed.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Final, Literal
from uuid import UUID

from execstore.config import Codec
from execstore.errors import InvalidBlobKey

__all__ = [
    "ARCHIVE_KINDS",
    "ArchiveKind",
    "InvalidBlobKey",
    "archive_key",
    "file_suffix",
    "validate_key",
]

ArchiveKind = Literal["results", "logs", "audit"]
ARCHIVE_KINDS: Final[frozenset[str]] = frozenset({"results", "logs", "audit"})

# Azure allows 1024 characters per blob name; 200 bytes per segment leaves room for the
# local store's sidecar and temp-file decorations under the usual 255-byte file name limit.
MAX_KEY_CHARS: Final = 1024
MAX_SEGMENT_BYTES: Final = 200

_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SUFFIXES: Final = {Codec.GZIP: "gz", Codec.ZSTD: "zst"}


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if every backend can store it, else raise InvalidBlobKey.

    Besides the path rules (relative, no empty, '.' or '..' segments, none starting with
    '.', none ending in a space or '.', no '\\', length limits) the key must use the
    character set in this module's docstring. A key that is not NFC-normalized is
    refused, not rewritten: ``unicodedata.normalize("NFC", key)`` is the key to use.
    """
    if not isinstance(key, str) or not key:
        raise InvalidBlobKey(str(key), "must be a non-empty string")
    if len(key) > MAX_KEY_CHARS:
        raise InvalidBlobKey(key, f"longer than {MAX_KEY_CHARS} characters")
    if key.startswith("/"):
        raise InvalidBlobKey(key, "must be relative (no leading '/')")
    if "\\" in key:
        # Azure rewrites '\' to '/', Windows treats it as a separator: one key, two meanings.
        raise InvalidBlobKey(key, "must not contain '\\'")
    for char in key:
        reason = _refused_character(char)
        if reason:
            raise InvalidBlobKey(key, f"must not contain {reason} (U+{ord(char):04X})")
    if not unicodedata.is_normalized("NFC", key):
        raise InvalidBlobKey(key, "must be NFC-normalized (unicodedata.normalize('NFC', key))")
    for segment in key.split("/"):
        if not segment:
            raise InvalidBlobKey(key, "must not contain empty segments ('//' or a trailing '/')")
        if segment in (".", ".."):
            raise InvalidBlobKey(key, "must not contain '.' or '..' segments")
        if segment.startswith("."):
            raise InvalidBlobKey(key, "segments must not start with '.' (reserved)")
        if segment.endswith((" ", ".")):
            # Both are stripped by some file systems and by Azure at the end of a name.
            raise InvalidBlobKey(key, "segments must not end with a space or '.'")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise InvalidBlobKey(key, f"a segment is longer than {MAX_SEGMENT_BYTES} bytes")
    return key


_REFUSED_CATEGORIES: Final = {
    "Cc": "control characters",
    "Cs": "surrogates",
    "Cf": "invisible format characters",
    "Co": "private-use characters",
    "Cn": "unassigned code points",
    "Zl": "line separators",
    "Zp": "paragraph separators",
}


def _refused_character(char: str) -> str | None:
    """Why ``char`` cannot be in a key, or None if it can."""
    code = ord(char)
    if 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE:
        return "noncharacters"
    return _REFUSED_CATEGORIES.get(unicodedata.category(char))


def file_suffix(codec: Codec, *, document: bool = False) -> str:
    """The file extension for a payload: ``.ndjson.gz``, ``.json.gz``, ``.ndjson.zst``..."""
    return f".{'json' if document else 'ndjson'}.{_SUFFIXES[Codec(codec)]}"


def archive_key(
    kind: ArchiveKind,
    organization_id: UUID | str | int,
    when: datetime,
    job_id: UUID | str | int,
    name: str,
    codec: Codec = Codec.GZIP,
    *,
    document: bool = False,
) -> str:
    """The deterministic key ``{kind}/{org}/{yyyy}/{mm}/{job_id}/{name}{suffix}``.

    The same arguments always give the same key, which is what lets a retried archival
    find the blob its crashed predecessor wrote. ``when`` must be timezone-aware; it is
    bucketed by its UTC month so the key does not depend on the caller's zone.
    """
    if kind not in ARCHIVE_KINDS:
        raise InvalidBlobKey(str(kind), f"kind must be one of {sorted(ARCHIVE_KINDS)}")
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidBlobKey(str(when), "'when' must be timezone-aware")
    org = _id_part("organization_id", organization_id)
    job = _id_part("job_id", job_id)
    if not _NAME_PATTERN.fullmatch(name) or ".." in name or name.endswith("."):
        raise InvalidBlobKey(name, "name must be 1-128 of [A-Za-z0-9._-], starting alphanumeric")
    utc = when.astimezone(UTC)
    key = f"{kind}/{org}/{utc:%Y}/{utc:%m}/{job}/{name}{file_suffix(codec, document=document)}"
    return validate_key(key)


def _id_part(label: str, value: UUID | str | int) -> str:
    if isinstance(value, bool):
        raise InvalidBlobKey(str(value), f"{label} must be a UUID, an int or an id string")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, int):
        if value < 0:
            raise InvalidBlobKey(str(value), f"{label} must not be negative")
        return str(value)
    if isinstance(value, str) and _ID_PATTERN.fullmatch(value):
        return value
    raise InvalidBlobKey(str(value), f"{label} must be 1-128 of [A-Za-z0-9_-]")
