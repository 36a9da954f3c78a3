"""The legacy ``execution_log`` as the online migration sees it: rows, triggers, mapping.

A legacy row travels as a plain dict (its *content*): ``id``, ``job_id``,
``step_index``, ``step_name``, ``level``, ``message``, ``metadata``, ``timestamp``,
``duration`` — the same keys whether read by a batch, captured by a trigger
(``row_to_json`` on PostgreSQL, ``json_object`` on SQLite) or stored in the change
queue. Mapping a content to a new line goes through the one legacy-id mapping
(:func:`execstore.ids.legacy_uuid`) and the same validation as ``append``.

Triggers (installed when a backfill starts, replaced at the swap, gone with the table):

- capture: a row inserted, updated or deleted *behind* the copy cursor (the batches
  will not see it) is queued in ``execution_log_backfill_changes`` with its content.
  On PostgreSQL it reads the cursor ``FOR SHARE``, so a batch advancing the cursor
  (``FOR UPDATE``) waits for writers in flight and then sees their rows: a row is
  either ahead of the cursor when the batch reads, or queued — never neither;
- retired (after the swap): inserts and updates are refused with a message saying
  where the rows went; deletes still work (a job deletion removes its legacy rows).
  Once verified, only the set-aside rows are left and updates are allowed again, so an
  operator can fix one in place (the next run moves it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any, Final

import sqlalchemy as sa

from execstore.errors import InvalidLogEntry
from execstore.ids import legacy_uuid
from execstore.logs.prepare import PreparedLine, prepare_entry
from execstore.schema.logs import execution_log_legacy

__all__ = [
    "CAPTURE_DDL",
    "DROP_TRIGGERS",
    "RETIRED_DDL",
    "RETIRED_INSERTS_ONLY_DDL",
    "RETIRED_MESSAGE",
    "content_of",
    "legacy",
    "line_hash",
    "map_content",
    "parse_time",
]

legacy: Final = execution_log_legacy
RETIRED_MESSAGE: Final = (
    "execution_log is retired: its rows moved to execution_log_partitioned "
    "(execstore backfill logs); append through uow.logs.append"
)
_COLUMNS: Final = (
    "id",
    "job_id",
    "step_index",
    "step_name",
    "level",
    "message",
    "metadata",
    "timestamp",
    "duration",
)


def parse_time(value: Any) -> dt.datetime:
    """A legacy timestamp (naive UTC, a datetime or its text) as an aware UTC datetime."""
    when = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def content_of(row: Any) -> dict[str, Any]:
    """The content of a legacy row read with :data:`legacy`'s columns (JSON-able)."""
    found = {name: getattr(row, name) for name in _COLUMNS}
    stamp = found["timestamp"]
    found["timestamp"] = stamp.isoformat() if isinstance(stamp, dt.datetime) else stamp
    return found


def map_content(
    content: Mapping[str, Any], workflows: Mapping[uuid.UUID, uuid.UUID]
) -> tuple[uuid.UUID, uuid.UUID, PreparedLine]:
    """(job id, workflow id, the validated line) of a legacy row; ValueError with the reason.

    ``workflows`` maps the job ids that exist to their workflow.
    """
    raw_job = content.get("job_id")
    if not isinstance(raw_job, str):
        raise ValueError(f"job_id {raw_job!r} is not a legacy id")
    job = legacy_uuid(raw_job)
    workflow = workflows.get(job)
    if workflow is None:
        raise ValueError(f"NotFound: job {raw_job} ({job}) does not exist")
    try:
        stamp = parse_time(content.get("timestamp"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"timestamp {content.get('timestamp')!r} is not a time") from exc
    entry = {
        "message": content.get("message"),
        "level": content.get("level"),
        "step_index": content.get("step_index"),
        "step_name": content.get("step_name"),
        "metadata": content.get("metadata"),
        "timestamp": stamp,
        "duration_ms": content.get("duration"),
    }
    try:
        return job, workflow, prepare_entry(0, entry, stamp)
    except InvalidLogEntry as exc:
        raise ValueError(exc.reason) from exc


def line_hash(
    job: uuid.UUID,
    timestamp: dt.datetime,
    level: int,
    step_index: int,
    step_name: str | None,
    message: str,
    metadata: Any,
    duration_ms: int | None,
) -> int:
    """A 64-bit hash of one line's content (summed over a table: an order-free checksum)."""
    text = json.dumps(
        [
            str(job),
            parse_time(timestamp).isoformat(),
            int(level),
            step_index,
            step_name,
            message,
            metadata,
            duration_ms,
        ],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


_PG_CAPTURE: Final = """
CREATE OR REPLACE FUNCTION execstore_log_backfill_capture() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    c_ts text;
    c_id text;
BEGIN
    SELECT cursor_ts, cursor_id INTO c_ts, c_id FROM execution_log_backfill
    WHERE id = 1 FOR SHARE;
    IF c_ts IS NULL THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND (OLD."timestamp", OLD.id) <= (c_ts::timestamp, c_id) THEN
        INSERT INTO execution_log_backfill_changes (op, legacy_id, "row", attempts)
        VALUES ('D', OLD.id, row_to_json(OLD)::json, 0);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND (NEW."timestamp", NEW.id) <= (c_ts::timestamp, c_id) THEN
        INSERT INTO execution_log_backfill_changes (op, legacy_id, "row", attempts)
        VALUES ('I', NEW.id, row_to_json(NEW)::json, 0);
    END IF;
    RETURN NULL;
END $$
"""


def _sqlite_capture(event: str, op: str, alias: str) -> list[str]:
    content = ", ".join(
        f"'{c}', json({alias}.metadata)" if c == "metadata" else f"'{c}', {alias}.\"{c}\""
        for c in _COLUMNS
    )
    name = f"execstore_log_backfill_{event.lower()}_{op.lower()}"
    return [
        f"DROP TRIGGER IF EXISTS {name}",
        f"""
CREATE TRIGGER {name} AFTER {event} ON execution_log
WHEN (SELECT cursor_ts FROM execution_log_backfill WHERE id = 1) IS NOT NULL
 AND ({alias}."timestamp", {alias}.id) <=
     (SELECT cursor_ts, cursor_id FROM execution_log_backfill WHERE id = 1)
BEGIN
    INSERT INTO execution_log_backfill_changes (op, legacy_id, "row", attempts)
    VALUES ('{op}', {alias}.id, json_object({content}), 0);
END
""",
    ]


CAPTURE_DDL: Final = {
    "postgresql": [
        _PG_CAPTURE,
        "DROP TRIGGER IF EXISTS execstore_log_backfill ON execution_log",
        "CREATE TRIGGER execstore_log_backfill AFTER INSERT OR UPDATE OR DELETE ON execution_log "
        "FOR EACH ROW EXECUTE FUNCTION execstore_log_backfill_capture()",
    ],
    "sqlite": [
        *_sqlite_capture("INSERT", "I", "NEW"),
        *_sqlite_capture("DELETE", "D", "OLD"),
        *_sqlite_capture("UPDATE", "D", "OLD"),
        *_sqlite_capture("UPDATE", "I", "NEW"),
    ],
}

RETIRED_DDL: Final = {
    "postgresql": [
        f"""
CREATE OR REPLACE FUNCTION execstore_log_retired() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{RETIRED_MESSAGE}' USING ERRCODE = 'read_only_sql_transaction';
END $$
""",
        "DROP TRIGGER IF EXISTS execstore_log_retired ON execution_log",
        "CREATE TRIGGER execstore_log_retired BEFORE INSERT OR UPDATE ON execution_log "
        "FOR EACH ROW EXECUTE FUNCTION execstore_log_retired()",
    ],
    "sqlite": [
        statement
        for event in ("INSERT", "UPDATE")
        for statement in (
            f"DROP TRIGGER IF EXISTS execstore_log_retired_{event.lower()}",
            f"CREATE TRIGGER execstore_log_retired_{event.lower()} BEFORE {event} "
            f"ON execution_log BEGIN SELECT RAISE(ABORT, '{RETIRED_MESSAGE}'); END",
        )
    ],
}

RETIRED_INSERTS_ONLY_DDL: Final = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS execstore_log_retired ON execution_log",
        "CREATE TRIGGER execstore_log_retired BEFORE INSERT ON execution_log "
        "FOR EACH ROW EXECUTE FUNCTION execstore_log_retired()",
    ],
    "sqlite": ["DROP TRIGGER IF EXISTS execstore_log_retired_update"],
}
"""After verification only set-aside rows are left: they may be fixed in place (UPDATE)."""

DROP_TRIGGERS: Final = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS execstore_log_backfill ON execution_log",
        "DROP TRIGGER IF EXISTS execstore_log_retired ON execution_log",
    ],
    "sqlite": [
        f"DROP TRIGGER IF EXISTS {name}"
        for name in (
            "execstore_log_backfill_insert_i",
            "execstore_log_backfill_delete_d",
            "execstore_log_backfill_update_d",
            "execstore_log_backfill_update_i",
            "execstore_log_retired_insert",
            "execstore_log_retired_update",
        )
    ],
}
"""Statements removing every trigger the migration installs (the capture and retired ones)."""


def capture_only(dialect: str) -> list[str]:
    """Statements removing the capture trigger(s) only."""
    return [s for s in DROP_TRIGGERS[dialect] if "retired" not in s]


def legacy_columns() -> list[sa.ColumnElement[Any]]:
    """The legacy columns in content order, ``timestamp`` also as raw text (the cursor)."""
    return [legacy.c[name] for name in _COLUMNS]
