"""Waiting for another task or connection without guessing how long it takes.

Tests never sleep to let something happen: they wait for an event, or poll what they
can observe (a row, a lock, a task) with :func:`wait_until`, which gives up with an
AssertionError naming what never happened once its deadline passes.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

__all__ = ["wait_until"]

DEADLINE = 30.0
"""Seconds before a wait gives up: far beyond what a healthy run needs."""


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    what: str,
    *,
    within: float = DEADLINE,
    interval: float = 0.01,
) -> None:
    """Return as soon as ``condition()`` is true (it may be async); polls every
    ``interval`` seconds and raises AssertionError("... never happened") after ``within``
    seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"{what} never happened within {within} s")
        await asyncio.sleep(interval)
