"""One read shape for every listing: a page, an opaque cursor, one limit rule.

    page = await uow.metadata.list(limit=50)
    while page.next_cursor is not None:
        page = await uow.metadata.list(limit=50, cursor=page.next_cursor)

Every listing (``metadata.list``, ``logs.for_job``, ``audit.query``, ``rag.rule_usage``)
takes ``cursor`` and ``limit`` and returns a :class:`Page`: ``items`` in the listing's
order and ``next_cursor``, the position after the last item, None on the last page (so
"has more" is ``next_cursor is not None``).

- **Limit**: an ``int`` (not a bool) in ``1..MAX_LIMIT``; ``DEFAULT_LIMIT`` when not
  given. Anything else is :class:`~execstore.errors.InvalidArgument`, never silently
  capped (:func:`check_limit`, the one place this is decided).
- **Cursor**: text execstore issued for *that* listing. It is versioned (``c1.``), the
  urlsafe base64 of a keyed checksum and a small JSON array (the listing's kind and the
  position, e.g. a time in microseconds and an id). Anything else, text altered by a
  single character, a cursor of another listing, a position of the wrong shape or out
  of range, raises :class:`~execstore.errors.InvalidCursor` (an InvalidArgument). The
  checksum is tamper detection, not secrecy: a cursor names a position only, and every
  read is still scoped to the caller's organization, so a cursor of another
  organization's listing is valid and harmless (it starts at that position).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import uuid
from typing import Any, Final, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from execstore.errors import InvalidArgument, InvalidCursor, shown

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CursorField",
    "Page",
    "check_limit",
    "decode_cursor",
    "encode_cursor",
]

DEFAULT_LIMIT: Final = 50
"""The page size of every listing when ``limit`` is not given."""
MAX_LIMIT: Final = 1000
"""The largest ``limit`` any listing accepts (larger is InvalidArgument)."""

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of a listing: ``items`` in the listing's order, and ``next_cursor``, the
    ``cursor`` of the next page (None on the last one)."""

    model_config = ConfigDict(frozen=True)

    items: list[T]
    next_cursor: str | None = None


def check_limit(limit: object, *, name: str = "limit") -> int:
    """``limit`` if it is an int in ``1..MAX_LIMIT``, else InvalidArgument naming it."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(
            f"{name} must be an integer from 1 to {MAX_LIMIT}, not {shown(limit)}"
        )
    return limit


# -- cursors ------------------------------------------------------------------------------

CursorField = type[int] | type[uuid.UUID] | type[dt.datetime]
"""What a position in a cursor is made of: ints (64-bit), uuids, aware datetimes."""

_PREFIX: Final = "c1."
_KEY: Final = b"execstore.pages/cursor/v1"
"""Keys the checksum: tamper detection, not a secret (see the module docstring)."""
_MAC_BYTES: Final = 12
_MAX_CHARS: Final = 400
"""Longer text is refused before it is decoded (real cursors are under 150 characters)."""
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROS_MIN: Final = -62_135_596_800_000_000
"""0001-01-01T00:00:00Z in microseconds since the epoch."""
_MICROS_MAX: Final = 253_402_300_799_999_999
"""9999-12-31T23:59:59.999999Z in microseconds since the epoch."""


def encode_cursor(kind: str, payload: tuple[Any, ...]) -> str:
    """The opaque cursor text for position ``payload`` of listing ``kind``.

    ``payload`` holds ints, uuids and aware datetimes (microsecond precision), in the
    order :func:`decode_cursor` is given their types.
    """
    values: list[Any] = [kind]
    for value in payload:
        if isinstance(value, dt.datetime):
            values.append(_micros(value))
        elif isinstance(value, uuid.UUID):
            values.append(value.hex)
        elif isinstance(value, int) and not isinstance(value, bool):
            values.append(value)
        else:
            raise TypeError(f"a cursor holds ints, uuids and datetimes, not {value!r}")
    body = json.dumps(values, separators=(",", ":")).encode()
    token = base64.urlsafe_b64encode(_mac(body) + body).decode("ascii").rstrip("=")
    return _PREFIX + token


def decode_cursor(kind: str, text: object, shape: tuple[CursorField, ...]) -> tuple[Any, ...]:
    """The position a cursor of listing ``kind`` names, one value per type in ``shape``.

    InvalidCursor unless ``text`` is exactly what :func:`encode_cursor` issued for ``kind``
    with a payload of that shape.
    """
    if not isinstance(text, str):
        raise InvalidCursor(f"a cursor is text, not {type(text).__name__}")
    if not text.startswith(_PREFIX) or len(text) > _MAX_CHARS or not text.isascii():
        raise InvalidCursor("not a cursor execstore issued")
    token = text[len(_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("not a cursor execstore issued") from exc
    mac, body = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
    # Compared on the bytes: base64 text can differ in its padding bits and decode the
    # same, so the text is checked too (only the canonical form is accepted).
    if not hmac.compare_digest(mac, _mac(body)) or _canonical(raw) != token:
        raise InvalidCursor("not a cursor execstore issued (or it was altered)")
    try:  # the key is no secret: a matching checksum does not make the JSON ours
        values = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidCursor("not a cursor execstore issued") from exc
    if not isinstance(values, list) or not values or values[0] != kind:
        raise InvalidCursor(f"not a cursor of this listing ({kind})")
    fields = values[1:]
    if len(fields) != len(shape):
        raise InvalidCursor(f"not a cursor of this listing ({kind})")
    return tuple(_field(value, type_, kind) for value, type_ in zip(fields, shape, strict=True))


def _mac(body: bytes) -> bytes:
    return hashlib.blake2b(body, key=_KEY, digest_size=_MAC_BYTES).digest()


def _canonical(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _micros(when: dt.datetime) -> int:
    if when.tzinfo is None:
        raise TypeError("a cursor's datetime must be timezone-aware")
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _field(value: Any, type_: CursorField, kind: str) -> Any:
    bad = InvalidCursor(f"not a cursor of this listing ({kind})")
    if type_ is uuid.UUID:
        if not isinstance(value, str) or len(value) != 32:
            raise bad
        try:
            return uuid.UUID(hex=value)
        except ValueError as exc:
            raise bad from exc
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad
    if type_ is dt.datetime:
        if not _MICROS_MIN <= value <= _MICROS_MAX:
            raise bad
        return _EPOCH + dt.timedelta(microseconds=value)
    if not _INT_MIN <= value <= _INT_MAX:
        raise bad
    return value
