"""Batch jobs that set bad rows aside instead of stopping.

Every archival, backfill and retention job works in batches and follows one rule: a row
it cannot process is *set aside* — reported by id with its reason, counted, left exactly
as it was — and the rest of the batch, and of the run, goes on. A later run tries the row
again (it is still unprocessed), so fixing the data and re-running is the whole recovery.

Two places a row can fail, two tools:

- preparing it in Python (decoding, validating, encoding): the job catches the error
  for that row and records a :class:`SetAside`;
- writing it: :func:`write_each` writes the batch in one savepoint and, only if that
  fails, retries row by row, each in its own savepoint, setting aside the rows the
  database refuses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

__all__ = ["SetAside", "describe_failure", "write_each"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SetAside:
    """A row a batch job left untouched, and why."""

    id: str
    reason: str


def describe_failure(exc: BaseException) -> str:
    """A one-line reason for a report (the error's type and the first line of its message)."""
    lines = str(exc).strip().splitlines()
    name = type(exc).__name__
    return f"{name}: {lines[0]}" if lines else name


async def write_each(
    session: AsyncSession,
    items: Sequence[T],
    write: Callable[[Sequence[T]], Awaitable[None]],
    ident: Callable[[T], str],
) -> tuple[list[T], list[SetAside]]:
    """The items written and the ones set aside: all at once, else one by one.

    ``write`` is called with the whole batch inside a savepoint; if the database refuses
    it, each item is written alone in its own savepoint and the refused ones are set
    aside with their reason. Nothing of a refused item remains in the transaction.
    """
    if not items:
        return [], []
    try:
        async with session.begin_nested():
            await write(items)
        return list(items), []
    except Exception as exc:  # which row? find out one by one below
        if len(items) == 1:
            return [], [SetAside(ident(items[0]), describe_failure(exc))]
    done: list[T] = []
    aside: list[SetAside] = []
    for item in items:
        try:
            async with session.begin_nested():
                await write([item])
        except Exception as exc:
            aside.append(SetAside(ident(item), describe_failure(exc)))
        else:
            done.append(item)
    return done, aside
