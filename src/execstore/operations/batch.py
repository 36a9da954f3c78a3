"""One shape for every batch job: a report, a progress callback, rows set aside.

Every archival, backfill, retention, verification and reconcile job returns a
:class:`BatchReport`:

- ``job``: what ran (``backfill results``, ``archive logs``, ``retention audit``...);
- ``dry_run``: True when the job only measured and changed nothing;
- ``counts``: its figures by name (``moved``, ``remaining``, ``records``...), every name
  present from the start so a report always has the same keys;
- ``set_aside``: the rows (or blobs, organizations, chains) it could not process, each
  with its reason: left exactly as they were, retried by the next run;
- ``details``: anything else worth showing (keys written, a phase, a checksum);
- ``needs_attention``: true when anything was set aside: the CLI then exits 3.

and reports progress through one callback, ``on_progress(done, total)`` (``total`` is
None when the job cannot know it up front).

A row a job cannot process is *set aside*, never a reason to stop the rest of the batch
or of the run: fixing the data and re-running is the whole recovery. Two places a row
can fail, two tools:

- preparing it in Python (decoding, validating, encoding): the job catches the error
  for that row and records a :class:`SetAside`;
- writing it: :func:`write_each` writes the batch in one savepoint and, only if that
  fails, retries row by row, each in its own savepoint, setting aside the rows the
  database refuses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["BatchReport", "Progress", "SetAside", "describe_failure", "write_each"]

T = TypeVar("T")

Progress: TypeAlias = Callable[[int, int | None], None]
"""``on_progress(done, total)``: items done so far, and how many in all (None: unknown)."""


@dataclass(frozen=True, slots=True)
class SetAside:
    """What a batch job left untouched (a row's id, a blob key, an organization), and why."""

    key: str
    reason: str


@dataclass(slots=True)
class BatchReport:
    """What a batch job did (with ``dry_run``: would do); see the module docstring."""

    job: str
    dry_run: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    set_aside: list[SetAside] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, job: str, *counts: str, dry_run: bool = False) -> BatchReport:
        """An empty report of ``job`` whose ``counts`` all start at zero."""
        return cls(job, dry_run=dry_run, counts=dict.fromkeys(counts, 0))

    @property
    def needs_attention(self) -> bool:
        """True when something was set aside: an operator must look (the CLI exits 3)."""
        return bool(self.set_aside)

    def add(self, **counts: int) -> None:
        """Add to the named counts."""
        for name, value in counts.items():
            self.counts[name] = self.counts.get(name, 0) + value

    def aside(self, key: object, reason: str) -> None:
        """Set ``key`` aside with ``reason``."""
        self.set_aside.append(SetAside(str(key), reason))

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (what ``--json`` prints)."""
        return {
            "job": self.job,
            "dry_run": self.dry_run,
            "needs_attention": self.needs_attention,
            "counts": dict(self.counts),
            "set_aside": [{"key": s.key, "reason": s.reason} for s in self.set_aside],
            "details": _plain(self.details),
        }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, uuid.UUID | dt.datetime | dt.date):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for a report (the error's type and the first line of its message)."""
    lines = str(exc).strip().splitlines()
    name = type(exc).__name__
    return f"{name}: {lines[0]}" if lines else name


async def write_each(
    session: AsyncSession,
    items: Sequence[T],
    write: Callable[[Sequence[T]], Awaitable[None]],
    key: Callable[[T], str],
) -> tuple[list[T], list[SetAside]]:
    """The items written and the ones set aside: all at once, else one by one.

    ``write`` is called with the whole batch inside a savepoint; if the database refuses
    it, each item is written alone in its own savepoint and the refused ones are set
    aside (under ``key(item)``) with their reason. Nothing of a refused item remains in
    the transaction.
    """
    if not items:
        return [], []
    try:
        async with session.begin_nested():
            await write(items)
        return list(items), []
    except Exception as exc:  # which row? find out one by one below
        if len(items) == 1:
            return [], [SetAside(key(items[0]), describe_failure(exc))]
    done: list[T] = []
    aside: list[SetAside] = []
    for item in items:
        try:
            async with session.begin_nested():
                await write([item])
        except Exception as exc:
            aside.append(SetAside(key(item), describe_failure(exc)))
        else:
            done.append(item)
    return done, aside
