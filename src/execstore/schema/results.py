"""Job results: the archive pointer of a job's full output and its screenshot rows."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from execstore.ids import legacy_uuid_sql
from execstore.schema import legacy
from execstore.schema.base import ArchivePointer, Base, job_fk, transitional_copy

__all__ = ["ExecutionScreenshot", "JobResultArchive", "execution_screenshots_legacy"]


class JobResultArchive(ArchivePointer, Base):
    """The full output of one job, archived as one JSON document: only what cannot be derived.

    The blob key is not stored: it is ``results/<org>/<yyyy>/<mm>/<job>/result.json.<gz|zst>``,
    derived from the job's organization, the UTC month of its ``created_at``, its id and
    ``codec`` (:func:`execstore.results.format.result_archive_key`); a document is always
    one record. The row packs without alignment padding (96 B with its header).
    """

    __tablename__ = "job_result_archives"
    job_id: Mapped[uuid.UUID] = mapped_column(job_fk(), primary_key=True)


class ExecutionScreenshot(Base):
    """One screenshot of a job: what cannot be derived (key suffix, size, time).

    No primary-key index: rows are read by job, through a plain index on ``job_id`` that
    PostgreSQL deduplicates (one entry per job instead of one per row: about 11 B per
    row instead of 55 B for a ``(job_id, ordinal)`` key). ``(job_id, ordinal)`` is still
    unique: a job's rows are written once, in the transaction that inserts its
    ``job_result_archives`` row, whose primary key refuses a second write.
    """

    __tablename__ = "execution_screenshots"
    __table_args__ = (sa.Index(None, "job_id"),)
    captured_at: Mapped[dt.datetime]
    job_id: Mapped[uuid.UUID] = mapped_column(job_fk())
    ordinal: Mapped[int] = mapped_column(sa.SmallInteger())
    step_index: Mapped[int] = mapped_column(sa.SmallInteger())
    width: Mapped[int | None] = mapped_column(sa.SmallInteger())
    height: Mapped[int | None] = mapped_column(sa.SmallInteger())
    key_suffix: Mapped[str] = mapped_column(sa.Text())
    """The URL after ``EXECSTORE_SCREENSHOT_BASE_URL + <org>/<job>/``, or the whole URL,
    marked (:class:`execstore.results.format.ScreenshotUrls`). Never truncated: a URL must
    come back whole."""

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        # The ORM needs an identity; the table needs no index for it (see above).
        table = cls.__table__
        return {"primary_key": [table.c.job_id, table.c.ordinal]}


execution_screenshots_legacy = transitional_copy(
    legacy.execution_screenshots, "execution_screenshots_legacy", Base.metadata
)


def _legacy_job_uuid_sql() -> str:
    from sqlalchemy.dialects import postgresql

    expression = legacy_uuid_sql(sa.literal_column("job_id"), "postgresql")
    dialect: sa.Dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return str(expression.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


LEGACY_JOB_UUID_SQL = _legacy_job_uuid_sql()
"""``legacy_uuid(job_id)`` of a legacy screenshot row, as PostgreSQL SQL with its
constants inline: the expression the archival job matches jobs with, and the one
``add_archival_tables`` indexes on PostgreSQL (``LEGACY_JOB_UUID_INDEX``; the planner
uses an expression index only for that very expression). The index is not declared
here: PostgreSQL prints an expression back in another form than SQLAlchemy writes it,
so autogenerate could not compare it; the migration creates it and the schema check
leaves it out by name."""

LEGACY_JOB_UUID_INDEX = "ix_execution_screenshots_legacy_job_uuid"
