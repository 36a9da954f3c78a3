"""The canonical form of an audit record, and the hash chain over it.

A record's canonical form is one line of compact JSON with a fixed key order::

    {"seq":7,"created_at":"2026-01-02T03:04:05.123456Z","id":"…","organization_id":"…",
     "actor_id":"…","action":"view","resource_type":"claim","resource_id":"…",
     "patient_ref":"…","claim_id":null,"job_id":"…","purpose":"treatment",
     "source_ip":"10.1.2.3","user_agent":"…","details":{…}}

Strings are escaped as :func:`json.dumps` does (``ensure_ascii=False``), ``details`` is
the JSON value with object keys sorted at every level, and a missing value is ``null``.
The line is exactly what :func:`execstore.blob.codec.serialize` writes for the same
fields in this order, so an archived segment's NDJSON line holds the very bytes that
were hashed.

The chain, per organization: ``h0 = sha256("execstore/audit/v1\\n" + organization
uuid bytes)`` and ``h[n] = sha256(h[n-1] + line[n])``. Each hot row keeps the first 8
bytes of its ``h`` (``link``), which names the first record that does not fit; the full
heads go to blob storage as checkpoints (see :mod:`execstore.audit.checkpoints`).
Archived and exported lines carry the link as a last key, ``"link":"<16 hex>"``;
:func:`split_stored_line` recovers the hashed line from such a line by slicing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any, Final

__all__ = [
    "FIELDS",
    "LINK_SUFFIX_LENGTH",
    "canonical_details",
    "chain_step",
    "format_time",
    "genesis",
    "link_of",
    "parse_time",
    "quote",
    "render_line",
    "render_quoted",
    "seq_of_line",
    "split_stored_line",
    "stored_line",
]

FIELDS: Final = (
    "seq",
    "created_at",
    "id",
    "organization_id",
    "actor_id",
    "action",
    "resource_type",
    "resource_id",
    "patient_ref",
    "claim_id",
    "job_id",
    "purpose",
    "source_ip",
    "user_agent",
    "details",
)
_GENESIS_TAG: Final = b"execstore/audit/v1\n"
_LINK_KEY: Final = b',"link":"'
LINK_SUFFIX_LENGTH: Final = len(_LINK_KEY) + 16 + 2
"""Bytes a stored line has beyond its hashed line: ``,"link":"<16 hex>"}`` minus ``}``."""

_ZERO: Final = dt.timedelta(0)
_DETAILS_JSON: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=True
)


def genesis(organization_id: uuid.UUID) -> bytes:
    """The chain's starting hash for ``organization_id``."""
    return hashlib.sha256(_GENESIS_TAG + organization_id.bytes).digest()


def chain_step(previous: bytes, line: bytes) -> bytes:
    """The chain hash after ``line``."""
    return hashlib.sha256(previous + line).digest()


def link_of(digest: bytes) -> int:
    """The 8-byte link a hot row stores for chain hash ``digest`` (a signed bigint)."""
    return int.from_bytes(digest[:8], "big", signed=True)


def quote(text: str | None) -> str:
    """``text`` as a JSON string (``null`` for None), exactly as the archive codec writes it."""
    return "null" if text is None else encode_basestring(text)


def format_time(value: dt.datetime) -> str:
    """``value`` as the canonical UTC text with microseconds and a ``Z``."""
    if value.tzinfo is None:
        return value.isoformat(timespec="microseconds") + "Z"
    if value.utcoffset() != _ZERO:
        value = value.astimezone(dt.UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: str) -> dt.datetime:
    """The aware datetime of a canonical time text."""
    return dt.datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=dt.UTC)


def _plain(value: Any) -> Any:
    """``value`` as plain JSON types; refuses what JSON cannot carry faithfully."""
    if value is None or isinstance(value, bool | int | str):
        return _clean_text(value) if isinstance(value, str) else value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"details cannot hold a {type(value).__name__}")
        return value
    if isinstance(value, Mapping):
        return {_clean_text(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return format_time(value) if value.tzinfo else value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    raise ValueError(f"details cannot hold a {type(value).__name__}")


def _clean_text(text: str) -> str:
    # PostgreSQL text and jsonb cannot hold NUL: the stored (and hashed) value has none.
    return text.replace("\x00", "") if "\x00" in text else text


def canonical_details(details: Any) -> str | None:
    """The canonical JSON text of ``details`` (None stays None).

    Object keys are sorted at every level; NUL characters are removed; datetimes, dates,
    uuids and decimals become text. NaN, infinities, lone surrogates and other values
    JSON cannot carry faithfully raise ValueError.
    """
    if details is None:
        return None
    text = _DETAILS_JSON.encode(_plain(details))
    text.encode("utf-8")  # lone surrogates cannot be stored or hashed: refuse them here
    return text


def render_line(
    *,
    seq: int,
    created_at: str,
    id: str,
    organization_id: str,
    actor_id: str | None,
    action: str,
    resource_type: str,
    resource_id: str | None,
    patient_ref: str | None,
    claim_id: str | None,
    job_id: str | None,
    purpose: str | None,
    source_ip: str | None,
    user_agent: str | None,
    details: str | None,
) -> bytes:
    """The canonical line of one record (text fields raw; ``details`` canonical JSON)."""
    return render_quoted(
        seq,
        created_at,
        id,
        organization_id,
        quote(actor_id),
        quote(action),
        quote(resource_type),
        quote(resource_id),
        quote(patient_ref),
        quote(claim_id),
        quote(job_id),
        quote(purpose),
        quote(source_ip),
        quote(user_agent),
        None if details is None else details.encode("utf-8"),
    )


def render_quoted(
    seq: int,
    created_at: str,
    id: str,
    organization_id: str,
    actor_id: str,
    action: str,
    resource_type: str,
    resource_id: str,
    patient_ref: str,
    claim_id: str,
    job_id: str,
    purpose: str,
    source_ip: str,
    user_agent: str,
    details: bytes | None,
) -> bytes:
    """:func:`render_line` with every text field already :func:`quote`-d (the fast path)."""
    head = (
        f'{{"seq":{seq},"created_at":"{created_at}","id":"{id}",'
        f'"organization_id":"{organization_id}","actor_id":{actor_id},'
        f'"action":{action},"resource_type":{resource_type},'
        f'"resource_id":{resource_id},"patient_ref":{patient_ref},'
        f'"claim_id":{claim_id},"job_id":{job_id},"purpose":{purpose},'
        f'"source_ip":{source_ip},"user_agent":{user_agent},"details":'
    ).encode()
    return head + (b"null" if details is None else details) + b"}"


def stored_line(line: bytes, digest: bytes) -> bytes:
    """``line`` with its link appended as the last key (how archives and exports hold it)."""
    return line[:-1] + _LINK_KEY + digest[:8].hex().encode("ascii") + b'"}'


def split_stored_line(stored: bytes) -> tuple[bytes, bytes] | None:
    """The hashed line and the 8 link bytes of a stored line; None if it has no link."""
    if len(stored) <= LINK_SUFFIX_LENGTH or stored[-LINK_SUFFIX_LENGTH:-18] != _LINK_KEY:
        return None
    try:
        link = bytes.fromhex(stored[-18:-2].decode("ascii"))
    except ValueError:
        return None
    return stored[:-LINK_SUFFIX_LENGTH] + b"}", link


def seq_of_line(line: bytes) -> int | None:
    """The ``seq`` a canonical line starts with, or None if it does not start like one."""
    if not line.startswith(b'{"seq":'):
        return None
    end = line.find(b",", 7)
    try:
        return int(line[7:end])
    except ValueError:
        return None
