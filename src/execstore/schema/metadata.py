"""Execution metadata (phase 5): ids, status, progress and timing; names are joined.

Shaped by measurement after a realistic lifecycle (create, start, a dozen progress
reports, complete or fail; one committed statement each), 20,000-200,000 executions:

- No ``progress_percent`` column: it is derived from the two step counters. The
  landed table kept it (a ``numeric``, 5-8 bytes, rewritten on every progress update).
- One secondary index, ``(organization_id, created_at)``; on PostgreSQL
  ``(uuid_hash(organization_id), created_at)``, whose entries are small enough for
  B-tree splits to leave pages full (see :data:`LISTING_INDEX`). The landed table also had
  ``(organization_id, status, created_at)``: every status change wrote new entries to it,
  and because an indexed column changed, none of those updates could be HOT, so every
  index got a new entry too. That index alone measured 238 B/row at 20,000 executions;
  without it 99% of lifecycle updates were HOT and table plus indexes went from 543 to
  301 B/row. Status filters are applied while walking the listing index newest first.
- Progress reports go to ``execution_progress`` (see there): the row is written three
  times in its life, which keeps its page from filling with dead versions whenever
  pruning is held back (887 -> 397 B/row in that test).
- Default fillfactor (100). 95 measured the same, 90 worse (303 vs 194 B/row of heap):
  inserts never prune a page, so room reserved for HOT versions made new rows spill
  to fresh pages sooner.
- Columns widest alignment first (timestamps, int4, int2, then the 1-byte-aligned
  uuids, then text), so the row pays no padding beyond the final MAXALIGN.

At 200,000 executions (``benchmarks/bench_dashboard.py``): 296 B/row, of which 193 heap,
57 the hash-keyed listing index, 44 the primary key, 3 ``execution_progress``; keyed on
the uuid, the listing index measured 73 (half full: fifty organizations each append to
their own part of it, and B-tree splits there were 50/50), 312 B/row in all. Updates
that cannot be HOT still add entries in the middle of an organization's range, and those
split pages in half; with inserts alone the hash-keyed index measured 34 B/row to 72.

Summaries (counts by status and duration percentiles per organization, workflow and UTC
day) live in ``execution_daily_summary``, a rollup kept fresh incrementally on
PostgreSQL: a trigger records which (organization, workflow, day) groups changed in
``execution_summary_dirty`` and ``execstore maintain`` recomputes only those groups (see
:mod:`execstore.metadata.summaries` for why this beat the materialized view). On SQLite
both tables exist but stay empty: summaries are answered from a plain query.

``execution_metadata_state`` holds a few named facts the capability records about
itself: when the summaries were last refreshed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from execstore.schema import legacy
from execstore.schema.base import Base, job_fk, new_metadata, owned_by, transitional_copy
from execstore.schema.enums import ExecutionStatus, IntEnumColumn
from execstore.schema.types import BoundedString

__all__ = [
    "DROP_SUMMARY_TRIGGERS_DDL",
    "LISTING_INDEX",
    "LISTING_STATISTICS_DDL",
    "SUMMARY_TRIGGERS_DDL",
    "ExecutionDailySummary",
    "ExecutionMetadata",
    "ExecutionMetadataState",
    "ExecutionProgress",
    "ExecutionSummaryDirty",
    "execution_metadata_legacy",
    "on_listing_key",
    "transitional_metadata",
]


LISTING_INDEX = "ix_execution_metadata_organization_hash_created_at"
"""PostgreSQL's listing index: ``(uuid_hash(organization_id), created_at)``.

Its entries take 28 bytes (an int4, a timestamp, the header and the line pointer) where
``(organization_id, created_at)`` needs 36, and 28 is the most for which PostgreSQL
(12+, ``_bt_afternewitemoff`` in nbtsplitloc.c) splits a page after an organization's
newest entry at the leaf fillfactor instead of in half. Fifty organizations each
appending to their own part of the index, 200,000 rows inserted in the same order:
72 B/row with the uuid key (pages half full), 34 with the hash. A non-HOT update adds a
duplicate key next to the old one, and that still splits in half (see the module
docstring for the lifecycle figure). Listings and the summary refresh name both
``uuid_hash(organization_id)`` and ``organization_id``: two organizations whose uuids
hash alike share a range of the index and read each other's entries only to skip them.
Page latencies measured the same as with the uuid key (200,000 executions, both indexes
freshly built: 1.25 ms first page, 2.97 ms deep page, either way).
"""


def on_listing_key(organization_column: Any, organization: Any) -> sa.ColumnElement[bool]:
    """``uuid_hash(column) = uuid_hash(organization)``: the condition that lets PostgreSQL
    walk :data:`LISTING_INDEX` (always beside the uuid equality itself, which alone keeps
    organizations whose ids hash alike apart)."""
    return sa.func.uuid_hash(organization_column) == sa.func.uuid_hash(organization)


LISTING_STATISTICS_DDL = (
    "CREATE STATISTICS execution_metadata_organization_hash (dependencies) "
    "ON organization_id, uuid_hash(organization_id) FROM execution_metadata"
)
"""Tells the planner the hash depends on the uuid: it would otherwise multiply the two
equalities' selectivities, expect a handful of rows and sort them instead of walking the
index (created with the table on PostgreSQL, by the listener below)."""


class ExecutionMetadata(Base):
    """Dashboard row for one job: ids, status, progress and timing; names are joined."""

    __tablename__ = "execution_metadata"
    # Newest-first listings scan the listing index backwards; a DESC key would buy
    # nothing. On PostgreSQL its first column is uuid_hash(organization_id), see
    # LISTING_INDEX; the listing statements name both it and organization_id.
    __table_args__ = (
        sa.Index(None, "organization_id", "created_at").ddl_if(dialect="sqlite"),
        sa.Index(
            LISTING_INDEX,
            sa.text("uuid_hash(organization_id)"),
            "created_at",
        ).ddl_if(dialect="postgresql"),
        owned_by("workflows", "workflow_id"),
        owned_by("clients", "client_id"),
        owned_by("claim_submissions", "claim_submission_id"),
        owned_by("credentials", "primary_account_id"),
    )
    created_at: Mapped[dt.datetime]
    started_at: Mapped[dt.datetime | None]
    completed_at: Mapped[dt.datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(sa.Integer())
    total_steps: Mapped[int] = mapped_column(sa.SmallInteger(), default=0, server_default="0")
    completed_steps: Mapped[int] = mapped_column(sa.SmallInteger(), default=0, server_default="0")
    status: Mapped[ExecutionStatus] = mapped_column(IntEnumColumn(ExecutionStatus))
    job_id: Mapped[uuid.UUID] = mapped_column(job_fk(), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("organizations.id"))
    workflow_id: Mapped[uuid.UUID]
    client_id: Mapped[uuid.UUID | None]
    claim_submission_id: Mapped[uuid.UUID | None]
    primary_account_id: Mapped[uuid.UUID | None]
    error_code: Mapped[str | None] = mapped_column(BoundedString(50))
    error_message: Mapped[str | None] = mapped_column(BoundedString(500))


class ExecutionProgress(Base):
    """Step counters of a run still in flight; folded into its metadata row when it ends.

    A run reports progress a dozen times or more within minutes of its row being
    created, while that row sits on the page new rows are still being added to. Kept
    on the metadata row, every report leaves a dead version there; whenever something
    holds back pruning (a long query, a backup, ANALYZE), the versions fill the page and
    new rows spill onto fresh pages: measured, 311 B/row quiet but 887 B/row with a
    0.3 s snapshot held every second. Here the churn stays in a table the size of the
    runs in flight (398 B/row in the same test), and the metadata row is written three
    times in its life: created, started, finished.
    """

    __tablename__ = "execution_progress"
    # Small and hot: let autovacuum empty it often instead of after 20% of it is dead.
    __table_args__ = (
        {
            "postgresql_with": {
                "autovacuum_vacuum_scale_factor": 0,
                "autovacuum_vacuum_threshold": 1000,
            }
        },
    )
    job_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("execution_metadata.job_id", ondelete="CASCADE"), primary_key=True
    )
    completed_steps: Mapped[int] = mapped_column(sa.SmallInteger())
    total_steps: Mapped[int] = mapped_column(sa.SmallInteger())


class ExecutionDailySummary(Base):
    """Counts by status and duration percentiles of one workflow's runs on one UTC day."""

    __tablename__ = "execution_daily_summary"
    organization_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(sa.Date(), primary_key=True)
    duration_total_ms: Mapped[int] = mapped_column(sa.BigInteger(), default=0)
    pending: Mapped[int] = mapped_column(sa.Integer(), default=0)
    queued: Mapped[int] = mapped_column(sa.Integer(), default=0)
    running: Mapped[int] = mapped_column(sa.Integer(), default=0)
    completed: Mapped[int] = mapped_column(sa.Integer(), default=0)
    failed: Mapped[int] = mapped_column(sa.Integer(), default=0)
    cancelled: Mapped[int] = mapped_column(sa.Integer(), default=0)
    timed_out: Mapped[int] = mapped_column(sa.Integer(), default=0)
    timed_runs: Mapped[int] = mapped_column(sa.Integer(), default=0)
    """Finished runs with a duration: what the percentiles and the total are over."""
    duration_p50_ms: Mapped[int | None] = mapped_column(sa.Integer())
    duration_p95_ms: Mapped[int | None] = mapped_column(sa.Integer())


class ExecutionSummaryDirty(Base):
    """A (organization, workflow, day) group whose summary row is stale (PostgreSQL)."""

    __tablename__ = "execution_summary_dirty"
    organization_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    workflow_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(sa.Date(), primary_key=True)


class ExecutionMetadataState(Base):
    """A named fact the metadata capability records about itself (the last refresh)."""

    __tablename__ = "execution_metadata_state"
    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    recorded_at: Mapped[dt.datetime] = mapped_column()
    details: Mapped[dict[str, Any]]


sa.event.listen(
    ExecutionMetadata.__table__,
    "after_create",
    sa.DDL(LISTING_STATISTICS_DDL).execute_if(dialect="postgresql"),  # type: ignore[no-untyped-call]
)

transitional_metadata = new_metadata()
"""Tables the head schema no longer has but a database below it may still hold."""

execution_metadata_legacy = transitional_copy(
    legacy.execution_metadata, "execution_metadata_legacy", transitional_metadata
)
"""The fat rows until ``contract_execution_metadata`` drops them (not part of head)."""


# PostgreSQL only: the trigger that records which summary groups a write made stale.
# A row counts in the group (organization, workflow, UTC day of created_at); a change
# to any column a summary reads marks the old and the new group. Progress updates
# touch none of them, so the WHEN clause keeps them from calling the function at all.
_MARK_GROUP = (
    "INSERT INTO execution_summary_dirty (organization_id, workflow_id, day) "
    "VALUES ({row}.organization_id, {row}.workflow_id, "
    "({row}.created_at AT TIME ZONE 'UTC')::date) "
    "ON CONFLICT DO NOTHING;"
)
SUMMARY_TRIGGERS_DDL: tuple[str, ...] = (
    "CREATE FUNCTION execstore_mark_summary_stale() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "  IF TG_OP IN ('UPDATE', 'DELETE') THEN " + _MARK_GROUP.format(row="OLD") + " END IF;\n"
    "  IF TG_OP IN ('UPDATE', 'INSERT') THEN " + _MARK_GROUP.format(row="NEW") + " END IF;\n"
    "  RETURN NULL;\n"
    "END $$",
    "CREATE FUNCTION execstore_clear_summaries() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "  DELETE FROM execution_summary_dirty;\n"
    "  DELETE FROM execution_daily_summary;\n"
    "  RETURN NULL;\n"
    "END $$",
    "CREATE TRIGGER execution_metadata_summary_insert_delete "
    "AFTER INSERT OR DELETE ON execution_metadata "
    "FOR EACH ROW EXECUTE FUNCTION execstore_mark_summary_stale()",
    "CREATE TRIGGER execution_metadata_summary_update "
    "AFTER UPDATE ON execution_metadata FOR EACH ROW "
    "WHEN (OLD.status IS DISTINCT FROM NEW.status "
    "OR OLD.duration_ms IS DISTINCT FROM NEW.duration_ms "
    "OR OLD.created_at IS DISTINCT FROM NEW.created_at "
    "OR OLD.workflow_id IS DISTINCT FROM NEW.workflow_id "
    "OR OLD.organization_id IS DISTINCT FROM NEW.organization_id) "
    "EXECUTE FUNCTION execstore_mark_summary_stale()",
    "CREATE TRIGGER execution_metadata_summary_truncate "
    "AFTER TRUNCATE ON execution_metadata "
    "FOR EACH STATEMENT EXECUTE FUNCTION execstore_clear_summaries()",
)
"""Created by ``slim_execution_metadata`` on PostgreSQL (SQLite summaries are live queries)."""

DROP_SUMMARY_TRIGGERS_DDL: tuple[str, ...] = (
    "DROP TRIGGER IF EXISTS execution_metadata_summary_truncate ON execution_metadata",
    "DROP TRIGGER IF EXISTS execution_metadata_summary_update ON execution_metadata",
    "DROP TRIGGER IF EXISTS execution_metadata_summary_insert_delete ON execution_metadata",
    "DROP FUNCTION IF EXISTS execstore_clear_summaries()",
    "DROP FUNCTION IF EXISTS execstore_mark_summary_stale()",
)
