"""The public types of job results."""

from __future__ import annotations

import uuid
from typing import Any

from execstore.repository import PublicModel, UtcDateTime

__all__ = ["ResultDetail", "ResultSummary", "ScreenshotRecord"]


class ResultSummary(PublicModel):
    """What ``jobs.result`` says about a finished run (read without blob I/O)."""

    job_id: uuid.UUID
    success: bool | None
    total_steps: int
    successful_steps: int
    failed_steps: int
    duration_ms: int | None
    screenshot_count: int
    archived: bool
    """The full output is in a blob (``detail()`` reads it)."""
    archive_missing: bool
    """The reconciler found the blob gone; ``detail()`` raises ArchiveMissing."""
    legacy: bool
    """``jobs.result`` still holds a legacy full output (not archived yet)."""


class ResultDetail(PublicModel):
    """The summary plus the full output exactly as the processor handed it over.

    ``output == the dict given to save()`` (see :mod:`execstore.jsonvalues`); for a
    legacy result moved by ``execstore backfill results`` it is the legacy JSON, plus
    ``legacyScreenshotRows`` when legacy screenshot rows were not listed in it.
    """

    summary: ResultSummary
    output: dict[str, Any]


class ScreenshotRecord(PublicModel):
    """One screenshot of a job, with its URL exactly as saved (rebuilt or stored whole)."""

    job_id: uuid.UUID
    ordinal: int
    step_index: int | None
    url: str
    width: int | None
    height: int | None
    captured_at: UtcDateTime
