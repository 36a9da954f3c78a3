"""Job results: the archive pointer of a job's full output and its screenshot rows."""

from __future__ import annotations

import datetime as dt
import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from execstore.schema import legacy
from execstore.schema.base import ArchivePointer, Base, job_fk, transitional_copy
from execstore.schema.types import BoundedString

__all__ = ["ExecutionScreenshot", "JobResultArchive", "execution_screenshots_legacy"]


class JobResultArchive(ArchivePointer, Base):
    """The full output of one job, archived as one JSON document."""

    __tablename__ = "job_result_archives"
    job_id: Mapped[uuid.UUID] = mapped_column(job_fk(), primary_key=True)


class ExecutionScreenshot(Base):
    """One screenshot of a job: what cannot be derived (key suffix, size, time)."""

    __tablename__ = "execution_screenshots"
    captured_at: Mapped[dt.datetime]
    job_id: Mapped[uuid.UUID] = mapped_column(job_fk(), primary_key=True)
    ordinal: Mapped[int] = mapped_column(sa.SmallInteger(), primary_key=True)
    step_index: Mapped[int] = mapped_column(sa.SmallInteger())
    width: Mapped[int | None] = mapped_column(sa.SmallInteger())
    height: Mapped[int | None] = mapped_column(sa.SmallInteger())
    key_suffix: Mapped[str] = mapped_column(BoundedString(200))


execution_screenshots_legacy = transitional_copy(
    legacy.execution_screenshots, "execution_screenshots_legacy", Base.metadata
)
