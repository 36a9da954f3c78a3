"""Text limits: a column's declared length is the limit, applied on every write.

The limit lives in one place, the model: :class:`execstore.schema.types.BoundedString`
truncates in ``process_bind_param``, so ORM flushes, Core ``insert()``/``update()`` and
executemany batches all pass through it without a second table of numbers. Callers that
write with their own SQL (COPY, text()) use :func:`fit_text` with :func:`limit_of`.

Truncation is a documented, safe transformation: the kept prefix ends with
:data:`TRUNCATION_MARKER`, the result never exceeds the limit, whole code points are kept
(never half a surrogate pair), NUL characters (which PostgreSQL rejects) are removed, and
applying it twice changes nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "TRUNCATION_MARKER",
    "fit_text",
    "limit_of",
    "strip_nul",
    "strip_nul_json",
    "surrogate_at",
]

TRUNCATION_MARKER = "…[truncated]"


def strip_nul(value: str) -> str:
    """``value`` without NUL characters (PostgreSQL text cannot hold them)."""
    return value.replace("\x00", "") if "\x00" in value else value


def surrogate_at(value: str) -> int | None:
    """Where ``value`` holds a surrogate code point, None if nowhere.

    Such text (a lone surrogate, or a pair kept as two code points) has no UTF-8 form:
    no database can store it, and the drivers fail mid-write when given it.
    """
    if value.isascii():
        return None
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        return int(exc.start)
    return None


def fit_text(value: str | None, limit: int | None) -> str | None:
    """``value`` without NULs, cut to at most ``limit`` characters with a visible marker."""
    if value is None:
        return None
    value = strip_nul(value)
    if limit is None or len(value) <= limit:
        return value
    if limit <= len(TRUNCATION_MARKER):
        return value[:limit] if not _ends_in_high_surrogate(value[:limit]) else value[: limit - 1]
    keep = limit - len(TRUNCATION_MARKER)
    head = value[:keep]
    if _ends_in_high_surrogate(head):
        head = head[:-1]
    return head + TRUNCATION_MARKER


def _ends_in_high_surrogate(text: str) -> bool:
    # Strings decoded with surrogateescape/surrogatepass can carry pairs; never split one.
    return bool(text) and "\ud800" <= text[-1] <= "\udbff"


def strip_nul_json(value: Any) -> Any:
    """A JSON-able value with NUL removed from every string in it (jsonb rejects \\u0000)."""
    if isinstance(value, str):
        return strip_nul(value)
    if isinstance(value, dict):
        return {strip_nul(str(k)): strip_nul_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strip_nul_json(v) for v in value]
    return value


def limit_of(column: Any) -> int | None:
    """The character limit of a mapped attribute or Column (None when unbounded)."""
    col = getattr(column, "property", None)
    if col is not None and hasattr(col, "columns"):
        column = col.columns[0]
    length = getattr(getattr(column, "type", None), "length", None)
    return int(length) if length is not None else None
