"""Every public method refuses an argument of the wrong type with InvalidArgument.

    @checks_arguments
    class JobRepository(ScopedRepository[m.Job]):
        async def get(self, job_id: uuid.UUID) -> JobRecord: ...

``checks_arguments`` wraps each public method of a repository so that, before its body
runs, every argument annotated with a plain type is checked against it: ``uuid.UUID``,
``str`` (and no surrogate code point: such text has no UTF-8 form and the drivers fail
mid-write on it), ``int`` (never a bool, within 64 bits), ``bool``, ``dt.datetime``,
``dt.date`` (not a datetime), an Enum (a member or a value of one, never a bool), unions
of these with ``None``, and a ``Sequence``, ``Collection`` or ``Iterable`` of them (never
text or a mapping; the items of a list, tuple or set are checked too). Anything else
(mappings, ``Any``) is left to the method, which validates it with its capability's own
error (InvalidLogEntry, InvalidRagContext, ...). A refusal names the parameter and the
type received (a ``cursor`` parameter's is InvalidCursor).

Checks are built from the annotations on the first call (names imported for type
checking only need never resolve); they cost about a microsecond a call.
"""

from __future__ import annotations

import collections.abc
import datetime as dt
import enum
import functools
import inspect
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from execstore.errors import InvalidArgument, InvalidCursor, shown
from execstore.textlimits import surrogate_at

__all__ = ["checks_arguments"]

T = TypeVar("T")
Check = Callable[[Any], str | None]
"""What is wrong with a value (a phrase), or None if nothing is."""

_INT64: Final = 2**63
_ERRORS: Final[dict[str, type[InvalidArgument]]] = {"cursor": InvalidCursor}
"""Parameters whose refusal has a more specific error than InvalidArgument."""


def checks_arguments(cls: type[T]) -> type[T]:
    """``cls`` with each public method defined on it checking its arguments (see above)."""
    for name, member in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        setattr(cls, name, _checked(member))
    return cls


def _checked(fn: Callable[..., Any]) -> Callable[..., Any]:
    names = list(inspect.signature(fn).parameters)[1:]  # after self
    checks: dict[str, Check] | None = None

    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        nonlocal checks
        if checks is None:
            checks = _checks_of(fn, names)
        get = checks.get
        for name, value in zip(names, args, strict=False):
            found = get(name)
            if found is not None and (problem := found(value)) is not None:
                raise _ERRORS.get(name, InvalidArgument)(f"{name} {problem}")
        for name, value in kwargs.items():
            found = get(name)
            if found is not None and (problem := found(value)) is not None:
                raise _ERRORS.get(name, InvalidArgument)(f"{name} {problem}")

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            check(args, kwargs)
            return await fn(self, *args, **kwargs)

        return call

    @functools.wraps(fn)  # an async generator (``audit.export``) refuses when called
    def plain(self: Any, *args: Any, **kwargs: Any) -> Any:
        check(args, kwargs)
        return fn(self, *args, **kwargs)

    return plain


def _checks_of(fn: Callable[..., Any], names: list[str]) -> dict[str, Check]:
    found: dict[str, Check] = {}
    annotations = getattr(fn, "__annotations__", {})
    for name in names:
        annotation = annotations.get(name)
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, fn.__globals__)
            except Exception:
                continue
        check = _check(annotation)
        if check is not None:
            found[name] = check
    return found


_CONTAINERS: Final[dict[Any, tuple[type, str]]] = {
    collections.abc.Sequence: (collections.abc.Sequence, "a sequence (a list or tuple)"),
    collections.abc.Collection: (collections.abc.Collection, "a collection (a list or set)"),
    collections.abc.Iterable: (collections.abc.Iterable, "an iterable (a list)"),
}


def _check(annotation: Any) -> Check | None:
    """The check of one annotation, None if it is not one this module checks."""
    origin = typing.get_origin(annotation)
    if origin in _CONTAINERS:
        kind, phrase = _CONTAINERS[origin]
        members = typing.get_args(annotation)
        return _container(kind, phrase, _check(members[0]) if members else None)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(annotation)
        allows_none = type(None) in members
        checks = [_check(m) for m in members if m is not type(None)]
        if not checks or any(c is None for c in checks):
            return None
        return _any_of([c for c in checks if c is not None], allows_none)
    if not isinstance(annotation, type):
        return None
    if annotation is bool:
        return lambda v: None if isinstance(v, bool) else _not("a bool", v)
    if annotation is int:
        return _integer
    if annotation is str:
        return _text
    if annotation is uuid.UUID:
        return lambda v: None if isinstance(v, uuid.UUID) else _not("a uuid.UUID", v)
    if annotation is dt.datetime:
        return lambda v: None if isinstance(v, dt.datetime) else _not("a datetime", v)
    if annotation is dt.date:
        return _date
    if issubclass(annotation, enum.Enum):
        return _member_of(annotation)
    return None


def _any_of(checks: list[Check], allows_none: bool) -> Check:
    def check(value: Any) -> str | None:
        if value is None and allows_none:
            return None
        problems = []
        for member in checks:
            problem = member(value)
            if problem is None:
                return None
            problems.append(problem)
        first = problems[0]
        return first.replace(", not ", " or None, not ", 1) if allows_none else first

    return check


def _container(kind: type, phrase: str, item: Check | None) -> Check:
    def check(value: Any) -> str | None:
        if type(value) is not list and (  # a list is the usual: no ABC checks for it
            not isinstance(value, kind) or isinstance(value, str | bytes | bytearray | Mapping)
        ):
            return _not(phrase, value)
        if item is not None and isinstance(value, list | tuple | set | frozenset):
            for index, member in enumerate(value):
                problem = item(member)
                if problem is not None:
                    return f"[{index}] {problem}"
        return None

    return check


def _not(expected: str, value: object) -> str:
    return f"must be {expected}, not {type(value).__name__}"


def _integer(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return _not("an integer", value)
    if not -_INT64 <= value < _INT64:
        return "is out of range (64 bits)"
    return None


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return _not("text", value)
    at = surrogate_at(value)
    if at is not None:
        return f"holds a surrogate code point at position {at} (not text)"
    return None


def _date(value: Any) -> str | None:
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        return _not("a date", value)
    return None


def _member_of(kind: type[enum.Enum]) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, kind):
            return None
        # Only ints and text are tried: the Enum's own error would repr anything else.
        if isinstance(value, int | str) and not isinstance(value, bool):
            try:
                kind(value)
            except ValueError:
                pass
            else:
                return None
        return f"must be a {kind.__name__} (or its value), not {shown(value)}"

    return check
