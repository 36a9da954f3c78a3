"""The public types of execution metadata: the dashboard view, a page, the summaries."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Final

from execstore.repository import PublicModel, UtcDateTime
from execstore.schema.enums import ExecutionStatus

__all__ = [
    "FAILURE_STATUSES",
    "LIVE_STATUSES",
    "DailySummary",
    "ExecutionSummary",
    "ExecutionView",
    "StatusCounts",
]

LIVE_STATUSES: Final = frozenset(
    {ExecutionStatus.PENDING, ExecutionStatus.QUEUED, ExecutionStatus.RUNNING}
)
"""Statuses an execution can still leave."""
FAILURE_STATUSES: Final = frozenset(
    {ExecutionStatus.FAILED, ExecutionStatus.CANCELLED, ExecutionStatus.TIMED_OUT}
)


class ExecutionView(PublicModel):
    """Everything a dashboard shows about one execution (every field the fat row had).

    Names are joined from their own tables when read: a renamed workflow shows its new
    name. ``progress_percent`` is derived from the two step counters, the account
    fields from the job's credentials (in the job's order; a credential deleted since
    reads as ``None``).
    """

    job_id: uuid.UUID
    organization_id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_name: str
    client_id: uuid.UUID | None
    client_name: str | None
    client_npi: str | None
    claim_submission_id: uuid.UUID | None
    insuree_name: str | None
    insuree_id: str | None
    status: ExecutionStatus
    progress_percent: Decimal
    total_steps: int
    completed_steps: int
    created_at: UtcDateTime
    started_at: UtcDateTime | None
    completed_at: UtcDateTime | None
    duration_ms: int | None
    error_code: str | None
    error_message: str | None
    primary_account_id: uuid.UUID | None
    primary_account_name: str | None
    all_account_ids: list[uuid.UUID]
    all_account_names: list[str | None]
    account_count: int


class StatusCounts(PublicModel):
    """How many executions are in each status."""

    pending: int = 0
    queued: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    timed_out: int = 0

    @property
    def total(self) -> int:
        """All executions counted."""
        return (
            self.pending
            + self.queued
            + self.running
            + self.completed
            + self.failed
            + self.cancelled
            + self.timed_out
        )


class DailySummary(PublicModel):
    """One workflow's executions created on one UTC day."""

    day: dt.date
    workflow_id: uuid.UUID
    workflow_name: str | None
    counts: StatusCounts
    timed_runs: int
    """Finished runs with a duration: what the percentiles and the average are over."""
    duration_p50_ms: int | None
    duration_p95_ms: int | None
    duration_avg_ms: int | None


class ExecutionSummary(PublicModel):
    """Counts and duration percentiles per workflow and day over a range of UTC days."""

    organization_id: uuid.UUID
    first_day: dt.date
    last_day: dt.date
    days: list[DailySummary]
    """Ordered by day, newest first, then workflow name; days without runs are absent."""
    totals: StatusCounts
    refreshed_at: UtcDateTime | None
    """When the figures were computed: the last ``execstore maintain`` refresh (None if
    it never ran), or the time of the query itself when ``live``."""
    live: bool
    """Answered from a plain query over the executions (SQLite, or ``live=True``)."""
