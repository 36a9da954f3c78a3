"""The plain in-memory model the lifecycle machine checks execstore against.

It knows only what the README promises, in the README's terms:

- a log line lives in the hot table until an archival run whose ``now - 30 days`` has
  reached the end of the line's UTC month (partitions are monthly, archived whole), then in
  a chunk of its organization's lines of that month; log retention deletes a chunk whose
  newest line is older than ``now -`` the organization's retention (365 days by default);
- a PHI audit record is written at the clock's now; archival moves records older than
  ``now - 90 days`` into segments of at most one UTC month; audit retention deletes a
  segment whose newest record is older than ``now - retention_days`` (never below 2192)
  and six calendar years old;
- results and RAG contexts stay until their job is deleted; audit records outlive it.

Chunks and segments are cut by what the runs saw, which the model does not replay, so a
deletion is certain only where every record the unit could hold is past its cut-off (the
whole UTC month is): such records are GONE. A record at or after the cut-off must stay
LIVE, to the microsecond. Between the two a record is MAYBE gone; the first read that does
not find it makes it GONE for good (it must never come back). A crashed run, or two runs
side by side, turns what a completed run would certainly do into MAYBE.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

LIVE = "live"
MAYBE = "maybe"
GONE = "gone"

NO = "no"
YES = "yes"
# MAYBE is also an archival state: a crashed run may or may not have moved it.

LOG_HOT_DAYS = 30
LOG_DEFAULT_RETENTION_DAYS = 365
AUDIT_HOT_DAYS = 90
AUDIT_FLOOR_DAYS = 2192

UTC = dt.UTC


def month_end(moment: dt.datetime) -> dt.datetime:
    """The first instant of the UTC month after ``moment``'s."""
    t = moment.astimezone(UTC)
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return dt.datetime(year, month, 1, tzinfo=UTC)


def six_years_after(moment: dt.datetime) -> dt.datetime:
    """``moment`` plus six calendar years (29 February goes to 1 March), as the README says."""
    try:
        return moment.replace(year=moment.year + 6)
    except ValueError:
        return moment.replace(year=moment.year + 6, month=3, day=1)


@dataclass
class Line:
    org: uuid.UUID
    job: uuid.UUID
    message: str
    at: dt.datetime
    archived: str = NO
    fate: str = LIVE
    taint: str | None = None
    """``corrupt`` or ``lost`` once the chunk holding it was tampered with or deleted."""


@dataclass
class Record:
    org: uuid.UUID
    id: uuid.UUID
    seq: int
    at: dt.datetime
    archived: str = NO
    fate: str = LIVE


@dataclass
class Job:
    org: uuid.UUID
    id: uuid.UUID
    created_at: dt.datetime
    result: dict[str, Any] | None = None
    rag: dict[str, Any] | None = None
    rag_at: dt.datetime | None = None
    deleted: bool = False
    result_taint: str | None = None


@dataclass
class Org:
    id: uuid.UUID
    workflow: uuid.UUID
    log_retention: int | None = None
    audit_taint: str | None = None
    """Why verify must name this organization's chain from now on (None: it must pass)."""

    @property
    def log_days(self) -> int:
        return LOG_DEFAULT_RETENTION_DAYS if self.log_retention is None else self.log_retention


@dataclass
class Model:
    orgs: dict[uuid.UUID, Org] = field(default_factory=dict)
    jobs: dict[uuid.UUID, Job] = field(default_factory=dict)
    lines: dict[str, Line] = field(default_factory=dict)
    records: dict[uuid.UUID, Record] = field(default_factory=dict)
    lost_keys: set[str] = field(default_factory=set)
    """Blobs the machine deleted behind execstore's back (pointer rows still naming them)."""
    corrupt_keys: set[str] = field(default_factory=set)
    """Blobs the machine overwrote."""
    excused_keys: set[str] = field(default_factory=set)
    """Keys a crashed or concurrent deletion may have left without their blob."""

    # -- what each operator job does ------------------------------------------------

    def archive_logs(self, now: dt.datetime, *, certain: bool) -> None:
        cutoff = now - dt.timedelta(days=LOG_HOT_DAYS)
        for line in self.lines.values():
            if line.fate == GONE or line.archived == YES:
                continue
            if month_end(line.at) <= cutoff:
                line.archived = YES if certain else MAYBE

    def log_retention(self, now: dt.datetime, org: uuid.UUID | None, *, certain: bool) -> None:
        for line in self.lines.values():
            if line.fate == GONE or (org is not None and line.org != org):
                continue
            if line.archived == NO:
                continue
            cutoff = now - dt.timedelta(days=self.orgs[line.org].log_days)
            if line.at >= cutoff:
                continue  # the chunk's newest line is at least this new: kept
            if certain and line.archived == YES and month_end(line.at) <= cutoff:
                line.fate = GONE
            else:
                line.fate = MAYBE

    def archive_audit(self, now: dt.datetime, org: uuid.UUID | None, *, certain: bool) -> None:
        cutoff = now - dt.timedelta(days=AUDIT_HOT_DAYS)
        for record in self.records.values():
            if record.fate == GONE or record.archived == YES:
                continue
            if org is not None and record.org != org:
                continue
            if record.at < cutoff:
                sure = certain and self.orgs[record.org].audit_taint is None
                record.archived = YES if sure else MAYBE

    def audit_retention(
        self, now: dt.datetime, days: int, org: uuid.UUID | None, *, certain: bool
    ) -> None:
        cutoff = now - dt.timedelta(days=days)
        for record in self.records.values():
            if record.fate == GONE or (org is not None and record.org != org):
                continue
            if record.archived == NO:
                continue
            if record.at >= cutoff or six_years_after(record.at) > now:
                continue
            end = month_end(record.at)
            sure = certain and self.orgs[record.org].audit_taint is None
            if sure and record.archived == YES and end <= cutoff and six_years_after(end) <= now:
                record.fate = GONE
            else:
                record.fate = MAYBE

    def delete_job(self, job: uuid.UUID) -> None:
        self.jobs[job].deleted = True
        for line in self.lines.values():
            if line.job == job:
                line.fate = GONE

    # -- what reads must show --------------------------------------------------------

    def lines_of(self, job: uuid.UUID) -> list[Line]:
        return [line for line in self.lines.values() if line.job == job and line.fate != GONE]

    def records_of(self, org: uuid.UUID) -> list[Record]:
        return sorted(
            (r for r in self.records.values() if r.org == org and r.fate != GONE),
            key=lambda r: r.seq,
        )
