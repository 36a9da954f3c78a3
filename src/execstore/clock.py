"""The one clock execstore reads: what time it is, for every decision and every stamp.

Hot windows, archival eligibility, retention, audit checkpoints, the "now" of reports,
and every timestamp execstore writes (job creation, metadata start and completion,
default log times, audit record times, archive and backfill stamps) come from a
:class:`Clock`. ``ExecStore.open(settings, clock=...)`` keeps one as ``store.clock`` and
hands it to every repository and operator job; functions that run on their own take
``clock=`` and default to :data:`SYSTEM_CLOCK`.

:class:`SystemClock` is the only place execstore reads the wall clock (a test scans the
package for any other read, in Python or in SQL). :class:`ManualClock` is the clock of
tests and simulations: it stands still until it is moved, so a test can run years of
archival and retention in seconds, at exact boundaries::

    clock = ManualClock(dt.datetime(2031, 1, 31, tzinfo=dt.UTC))
    async with ExecStore.open(settings, clock=clock) as store:
        ...
        clock.advance(days=30)

Durations (``time.monotonic``, ``time.perf_counter``) are not dates and stay as they are.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, Protocol, runtime_checkable

from execstore.errors import InvalidArgument

__all__ = ["SYSTEM_CLOCK", "Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Where execstore gets the current time."""

    def now(self) -> dt.datetime:
        """The current time: timezone-aware, in UTC."""
        ...


class SystemClock:
    """The wall clock: the current UTC time of this machine."""

    def now(self) -> dt.datetime:
        """The wall clock's current time, timezone-aware, in UTC."""
        return dt.datetime.now(dt.UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Final = SystemClock()
"""The clock everything uses unless given another one."""


class ManualClock:
    """A clock that stands still until it is set or advanced; it never goes backwards.

    Time only moving forward is what archival, retention and the audit chain assume of a
    clock; a test that needs an earlier time starts a new ManualClock.
    """

    def __init__(self, start: dt.datetime) -> None:
        self._now = _aware(start, "start")

    def now(self) -> dt.datetime:
        """The time the clock was last set or advanced to (UTC)."""
        return self._now

    def set(self, when: dt.datetime) -> None:
        """Move the clock to ``when``; InvalidArgument if that is naive or earlier than now."""
        target = _aware(when, "when")
        if target < self._now:
            raise InvalidArgument(
                f"a ManualClock never goes backwards ({target.isoformat()} is before "
                f"{self._now.isoformat()}): start a new clock instead"
            )
        self._now = target

    def advance(self, delta: dt.timedelta | None = None, **kwargs: float) -> dt.datetime:
        """The new time, ``delta`` (or ``timedelta(**kwargs)``, e.g. ``days=30``) later.

        InvalidArgument for a negative step, for both ``delta`` and keywords, for neither,
        or for keywords ``timedelta`` does not take.
        """
        if (delta is None) == (not kwargs):
            raise InvalidArgument("advance takes a timedelta or timedelta keywords (one of them)")
        if delta is None:
            try:
                delta = dt.timedelta(**kwargs)
            except (TypeError, OverflowError) as exc:
                raise InvalidArgument(f"advance: {exc}") from exc
        if delta < dt.timedelta(0):
            raise InvalidArgument(f"a ManualClock never goes backwards (advance by {delta})")
        try:
            self._now = self._now + delta
        except OverflowError as exc:
            raise InvalidArgument(f"advance: {delta} from {self._now} is past year 9999") from exc
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


def _aware(value: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime):
        raise InvalidArgument(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{name} must be timezone-aware ({value.isoformat()} is naive)")
    return value.astimezone(dt.UTC)
