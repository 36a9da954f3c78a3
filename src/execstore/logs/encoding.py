"""Log metadata as compact JSON text: the standard encoder, fronted by orjson when installed.

Two documented conversions (a uuid as its text, an Enum member as its value); anything
else that is not JSON is refused with TypeError or ValueError (NaN and infinities too).
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable
from typing import Any

from execstore.textlimits import strip_nul_json

__all__ = ["driver_uuid", "encode_json", "fast_encode", "standard_encode"]


def _standard_encoder() -> Callable[[Any], str]:
    def refuse(value: Any) -> Any:
        # Two documented conversions (a uuid as its text, an Enum member as its value:
        # what orjson, when installed, does by itself); anything else is not JSON.
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, enum.Enum):
            return value.value
        raise TypeError(f"{type(value).__name__} is not JSON")

    try:
        from json.encoder import c_make_encoder  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - not CPython
        c_make_encoder = None
    if c_make_encoder is None:  # pragma: no cover
        return json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=refuse
        ).encode
    # The C encoder built once: JSONEncoder.encode rebuilds it on every call, which is
    # half the cost of preparing a line.
    markers: dict[int, Any] = {}
    make = c_make_encoder(
        markers, refuse, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )

    def encode(value: Any) -> str:
        if isinstance(value, str):
            return _utf8(str(json.encoder.encode_basestring(value)))
        try:
            return _utf8("".join(make(value, 0)))
        except BaseException:
            # The C encoder leaves what it was in the middle of in its circular-reference
            # markers when it fails: encoding the same value again would then say
            # "Circular reference detected" (and the markers would keep it alive).
            markers.clear()
            raise

    return encode


def _utf8(text: str) -> str:
    """``text`` if it is UTF-8 encodable; a lone surrogate raises UnicodeEncodeError (a
    ValueError), which the driver would otherwise raise mid-write."""
    if not text.isascii():
        text.encode()
    return text


def _with_orjson(standard: Callable[[Any], str]) -> Callable[[Any], str]:
    """``standard``, fronted by orjson when it is installed (the ``fast`` extra).

    orjson writes a line's small metadata object about six times faster; what it does
    differently goes to ``standard``, which decides: anything it refuses (a subclass of
    str, int, dict or list, a datetime, a dataclass, a non-str key, an int beyond 64
    bits, invalid UTF-8) and any output holding ``null``, since orjson writes NaN and
    infinities as null where ``standard`` refuses them. The text may differ (``1e16``
    for ``1e+16``); the JSON value never does.
    """
    try:
        import orjson
    except ImportError:  # pragma: no cover - the fast extra is not installed
        return standard
    dumps = orjson.dumps
    options = (
        orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_SUBCLASS
    )

    def decline(value: Any) -> Any:
        raise TypeError("left to the standard encoder")

    def encode(value: Any) -> str:
        try:
            out = dumps(value, default=decline, option=options)
        except TypeError:  # orjson.JSONEncodeError included
            return standard(value)
        if b"null" in out:
            return standard(value)
        return out.decode()

    return encode


standard_encode = _standard_encoder()
"""The standard library's C encoder, built once."""
fast_encode = _with_orjson(standard_encode)
"""orjson first where it agrees with the standard encoder, else the standard encoder."""

try:
    # asyncpg's own UUID: COPY encodes it with a memcpy, a uuid.UUID through a Python
    # property call per row (``.bytes``), which is ~0.5 µs of every line's cost.
    from asyncpg.pgproto.pgproto import UUID as _DriverUUID
except ImportError:  # pragma: no cover - another asyncpg layout
    _DriverUUID = None


def driver_uuid(value: uuid.UUID) -> uuid.UUID:
    """``value`` as asyncpg's UUID (a uuid.UUID subclass, equal to it)."""
    if _DriverUUID is None or type(value) is not uuid.UUID:
        return value
    return _DriverUUID(value.bytes)  # type: ignore[no-any-return]


def encode_json(value: Any) -> str:
    """Compact JSON text of ``value``, NULs removed; TypeError/ValueError if it is not JSON."""
    text = fast_encode(value)
    if "\\u0000" in text:
        text = fast_encode(strip_nul_json(value))
    return text
