"""Execution metadata for dashboards: slim rows, names by joins, keyset listing, summaries.

- :mod:`~execstore.metadata.repository`: ``uow.metadata`` (create, start, progress,
  complete, fail; get, list, summary);
- :mod:`~execstore.metadata.views`: the one joined query behind every view;
- :mod:`~execstore.metadata.listing`: the listing's filters and keyset query;
- :mod:`~execstore.metadata.summaries`: the per-day rollup and its refresh;
- :mod:`~execstore.metadata.backfill`: moving the legacy fat rows, and checking the move.
"""

from execstore.metadata.backfill import backfill_metadata, count_remaining
from execstore.metadata.check import Mismatch, check_metadata
from execstore.metadata.repository import FAILURE_STATUSES, LIVE_STATUSES, MetadataRepository
from execstore.metadata.summaries import SummaryRefresh, refresh_summaries
from execstore.metadata.types import (
    DailySummary,
    ExecutionSummary,
    ExecutionView,
    StatusCounts,
)
from execstore.schema.enums import ExecutionStatus

__all__ = [
    "FAILURE_STATUSES",
    "LIVE_STATUSES",
    "DailySummary",
    "ExecutionStatus",
    "ExecutionSummary",
    "ExecutionView",
    "MetadataRepository",
    "Mismatch",
    "StatusCounts",
    "SummaryRefresh",
    "backfill_metadata",
    "check_metadata",
    "count_remaining",
    "refresh_summaries",
]
