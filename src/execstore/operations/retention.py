"""One retention API for logs and audit: :func:`apply_retention`.

Both kinds delete *archives* (blobs and their pointer rows) whose newest record is older
than the retention, report in the same shape (counts ``organizations``, ``archives``,
``records``, ``bytes``) and refuse a retention they cannot apply with InvalidRetention:

- ``logs``: an organization keeps its own retention where it set one
  (``uow.logs.set_retention``), else ``days`` (``EXECSTORE_LOG_RETENTION_DAYS``); a
  stored retention shorter than the hot window is not applied: that organization is set
  aside;
- ``audit``: one retention for every organization (``EXECSTORE_AUDIT_RETENTION_DAYS``),
  never below six years (45 CFR 164.316(b)(2)): a shorter ``days`` raises
  InvalidRetention before anything is deleted.
"""

from __future__ import annotations

import enum
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from execstore.blob import Archives
from execstore.clock import SYSTEM_CLOCK, Clock
from execstore.errors import InvalidRetention
from execstore.operations.batch import BatchReport, Progress

__all__ = ["COUNTS", "RetentionKind", "apply_retention", "retention_kind"]

COUNTS = ("organizations", "archives", "records", "bytes")
"""The counts of a retention report: organizations looked at, archives (log chunks, audit
segments) deleted, the records they held, their stored bytes (with ``dry_run``: would)."""


class RetentionKind(enum.StrEnum):
    """What a retention applies to."""

    LOGS = "logs"
    AUDIT = "audit"


def retention_kind(kind: RetentionKind | str) -> RetentionKind:
    """``kind`` as a :class:`RetentionKind`; InvalidRetention for anything else."""
    try:
        return RetentionKind(kind)
    except ValueError:
        raise InvalidRetention(f"unknown retention kind {kind!r}: logs or audit") from None


async def apply_retention(
    sessions: async_sessionmaker[AsyncSession],
    archives: Archives,
    kind: RetentionKind | str,
    *,
    days: int,
    hot_days: int = 0,
    organization_id: uuid.UUID | None = None,
    dry_run: bool = False,
    on_progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> BatchReport:
    """The report of deleting ``kind``'s archives past their retention (see the module doc).

    ``days``: the retention (logs: for organizations without their own); ``hot_days``:
    the log hot window no log retention may be shorter than. Ages are measured from the
    clock's now; ``organization_id`` limits the run to one organization.
    """
    # The capabilities build on this package: theirs are imported when a retention runs.
    from execstore.audit.archival import expire_audit_segments
    from execstore.logs.retention import expire_log_chunks

    which = retention_kind(kind)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InvalidRetention(f"a retention is a whole number of days, at least 1: {days!r}")
    report = BatchReport.start(f"retention {which.value}", *COUNTS, dry_run=dry_run)
    report.details["retention_days"] = days
    if which is RetentionKind.LOGS:
        await expire_log_chunks(
            sessions,
            archives,
            report,
            default_days=days,
            hot_days=hot_days,
            organization_id=organization_id,
            on_progress=on_progress,
            clock=clock,
        )
    else:
        await expire_audit_segments(
            sessions,
            archives,
            report,
            retention_days=days,
            organization_id=organization_id,
            on_progress=on_progress,
            clock=clock,
        )
    return report
