"""JSON values: what execstore stores exactly, and the check that refuses anything else.

The contract, for every JSON payload a caller hands execstore (a job's output today;
log metadata, RAG context and audit details follow the same rule): **JSON values
round-trip exactly; anything else raises** :class:`~execstore.errors.InvalidJsonValue`
(an ``ExecstoreError`` and a ``ValueError``) naming the JSON path of the offending
value, before anything is written.

A JSON value is one of these built-in types, exactly (not a subclass):

- ``dict`` whose keys are all ``str``;
- ``list`` (a ``tuple`` is refused: it would come back as a list);
- ``str`` that is valid Unicode (no lone surrogates, which UTF-8 cannot hold);
- ``int`` with at most 4,000 digits (``bool`` is ``true``/``false``, not a number);
- ``float`` that is finite (NaN and the infinities are not JSON);
- ``bool`` and ``None``;

nested at most :data:`MAX_DEPTH` (100) containers deep. Everything else — ``Decimal``,
``datetime``, ``bytes``, sets, enums, ``OrderedDict``, tuples, non-string keys — is
refused rather than converted, because a conversion would hand back something other
than what was saved (``{1: "a", "1": "b"}`` would even lose a key). Convert such values
yourself (``isoformat()``, ``str(decimal)``, ``list(...)``) and you get back exactly
what you stored.

Paths are written JSONPath style: ``$`` is the document, ``.name`` a key that is an
identifier, ``["any key"]`` any other key, ``[3]`` a list index.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from execstore.errors import InvalidJsonValue, shown

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "check_json", "json_path"]

MAX_DEPTH: Final = 100
"""How many containers (objects and arrays) may be nested, the document itself included."""
MAX_INT_DIGITS: Final = 4000
"""The longest integer, in decimal digits (Python refuses to print much longer ones)."""

_INT_LIMIT: Final = 10**MAX_INT_DIGITS
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TYPE_ADVICE: Final = {
    "tuple": "a tuple (JSON arrays come back as lists: pass a list)",
    "set": "a set (pass a sorted list)",
    "frozenset": "a frozenset (pass a sorted list)",
    "Decimal": "a Decimal (pass str(value) or a float)",
    "datetime": "a datetime (pass value.isoformat())",
    "date": "a date (pass value.isoformat())",
    "time": "a time (pass value.isoformat())",
    "bytes": "bytes (pass text, e.g. base64)",
    "bytearray": "a bytearray (pass text, e.g. base64)",
    "UUID": "a UUID (pass str(value))",
}


class _Refused(Exception):
    """Raised deep in the walk; the path is collected on the way out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.parts: list[str | int] = []


def check_json(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Return if ``value`` is a JSON value (module docstring); else raise InvalidJsonValue."""
    try:
        _check(value, 1, max_depth)
    except _Refused as refused:
        raise InvalidJsonValue(json_path(reversed(refused.parts)), refused.reason) from None


def json_path(parts: Any) -> str:
    """``$.a["b c"][2]`` for the keys and indexes ``parts``."""
    text = "$"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}"
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


def _check(value: Any, depth: int, max_depth: int) -> None:
    kind = type(value)
    if kind is str:
        _check_text(value)
    elif kind is dict:
        if depth > max_depth:
            raise _Refused(f"nested deeper than {max_depth} levels")
        for key, item in value.items():
            if type(key) is not str:
                raise _Refused(f"key {shown(key)} is {type(key).__name__}, not str")
            try:
                _check_text(key)
                _check(item, depth + 1, max_depth)
            except _Refused as refused:
                refused.parts.append(key)
                raise
    elif kind is list:
        if depth > max_depth:
            raise _Refused(f"nested deeper than {max_depth} levels")
        for index, item in enumerate(value):
            try:
                _check(item, depth + 1, max_depth)
            except _Refused as refused:
                refused.parts.append(index)
                raise
    elif kind is int:
        if not -_INT_LIMIT < value < _INT_LIMIT:
            raise _Refused(f"an integer longer than {MAX_INT_DIGITS} digits")
    elif kind is float:
        if not math.isfinite(value):
            raise _Refused(f"{shown(value)} is not a JSON number")
    elif value is None or kind is bool:
        return
    else:
        raise _Refused(_describe(value))


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ord(text[exc.start])
        reason = f"text with a lone surrogate (U+{char:04X}) that UTF-8 cannot hold"
        raise _Refused(reason) from None


def _describe(value: Any) -> str:
    name = type(value).__name__
    if name in _TYPE_ADVICE:
        return _TYPE_ADVICE[name]
    if isinstance(value, dict | list | str | int | float):
        base = next(t for t in (dict, list, str, int, float) if isinstance(value, t)).__name__
        return f"a value of type {name}, a subclass of {base} (pass a plain {base})"
    return f"a value of type {name}"
