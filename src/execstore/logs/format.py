"""The stored forms of log lines: archive records, chunk keys, job fingerprints.

An archive chunk is plain gzip (or zstd) NDJSON, one line per log line, sorted by
``(job_id, timestamp, id)``; ``gunzip | jq 'select(.job_id == "...")'`` reads it::

    {"job_id":"<uuid>","id":123,"timestamp":"2026-01-05T10:00:00.123456Z","level":"info",
     "step_index":3,"step_name":"Open claim","message":"...","duration_ms":820,
     "metadata":{...}}

Keys whose value is null are left out. ``job_id`` comes first on every line, so a
reader holding the decoded chunk (the cache keeps it) finds one job's lines by binary
search over the bytes and parses only those.

Keys are deterministic: ``logs/<org>/<yyyy>/<mm>/<first job>/c<first id>.ndjson.gz``
(``.r<n>`` before the suffix after the n-th rewrite), so a re-run of a crashed batch
produces the same key and the same bytes, and the create-only put is a no-op.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from typing import Any, Final

from execstore.blob.keys import archive_key
from execstore.config import Codec
from execstore.logs.types import LogEntry
from execstore.schema.enums import LogLevel

__all__ = [
    "LOGS_PREFIX",
    "chunk_key",
    "entry_from_record",
    "find_job_lines",
    "first_id_of_key",
    "job_fingerprints",
    "may_hold_job",
    "record_of",
]

LOGS_PREFIX: Final = "logs/"
_LINE_PREFIX: Final = b'{"job_id":"'
_JOB_END: Final = len(_LINE_PREFIX) + 36
_FINGERPRINT: Final = 8


def format_time(when: dt.datetime) -> str:
    """``2026-01-05T10:00:00.123456Z`` (always UTC, always microseconds)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(
    job_id: uuid.UUID,
    id: int,
    timestamp: dt.datetime,
    level: int,
    step_index: int,
    step_name: str | None,
    message: str,
    duration_ms: int | None,
    metadata: Any,
) -> dict[str, Any]:
    """The archive record of one line (``job_id`` first; nulls left out)."""
    record: dict[str, Any] = {
        "job_id": str(job_id),
        "id": id,
        "timestamp": format_time(timestamp),
        "level": LogLevel(level).name.lower(),
        "step_index": step_index,
    }
    if step_name is not None:
        record["step_name"] = step_name
    record["message"] = message
    if duration_ms is not None:
        record["duration_ms"] = duration_ms
    if metadata is not None:
        record["metadata"] = metadata
    return record


def entry_from_record(record: dict[str, Any]) -> LogEntry:
    """The public entry of an archive record."""
    return LogEntry(
        id=record["id"],
        job_id=uuid.UUID(record["job_id"]),
        timestamp=dt.datetime.fromisoformat(record["timestamp"]),
        level=LogLevel.parse(record["level"]),
        step_index=record.get("step_index", 0),
        step_name=record.get("step_name"),
        message=record["message"],
        metadata=record.get("metadata"),
        duration_ms=record.get("duration_ms"),
    )


def chunk_key(
    organization_id: uuid.UUID,
    month: dt.datetime,
    first_job: uuid.UUID,
    first_id: int,
    codec: Codec,
    *,
    revision: int = 0,
) -> str:
    """The deterministic key of a chunk (see the module docstring)."""
    name = f"c{first_id}" + (f".r{revision}" if revision else "")
    return archive_key("logs", organization_id, month, first_job, name, codec)


def first_id_of_key(key: str) -> int | None:
    """The first line id a chunk key names (None if ``key`` is not a chunk key)."""
    name = key.rsplit("/", 1)[-1]
    if not name.startswith("c"):
        return None
    try:
        return int(name[1:].split(".", 1)[0])
    except ValueError:
        return None


def job_fingerprints(job_ids: Iterable[uuid.UUID]) -> bytes:
    """The sorted first 8 bytes of each job id, concatenated (a chunk's ``job_keys``)."""
    return b"".join(sorted({job.bytes[:_FINGERPRINT] for job in job_ids}))


def may_hold_job(job_keys: bytes, job_id: uuid.UUID) -> bool:
    """Whether a chunk with these ``job_keys`` may hold lines of ``job_id`` (never misses)."""
    want = job_id.bytes[:_FINGERPRINT]
    lo, hi = 0, len(job_keys) // _FINGERPRINT
    while lo < hi:
        mid = (lo + hi) // 2
        if job_keys[mid * _FINGERPRINT : (mid + 1) * _FINGERPRINT] < want:
            lo = mid + 1
        else:
            hi = mid
    return job_keys[lo * _FINGERPRINT : (lo + 1) * _FINGERPRINT] == want


def find_job_lines(payload: bytes, job_id: uuid.UUID) -> list[dict[str, Any]]:
    """The records of ``job_id`` in a decoded chunk, in stored order.

    Binary search over the bytes when every line starts with ``{"job_id":"``; a chunk
    written any other way is parsed whole and filtered.
    """
    job = str(job_id).encode()
    lines = _search(payload, job)
    if lines is None:
        return [
            record
            for line in payload.split(b"\n")
            if line and (record := json.loads(line)).get("job_id") == str(job_id)
        ]
    return [json.loads(line) for line in lines]


def _search(payload: bytes, job: bytes) -> list[bytes] | None:
    size = len(payload)

    def job_at(start: int) -> bytes | None:
        if not payload.startswith(_LINE_PREFIX, start):
            return None
        return payload[len(_LINE_PREFIX) + start : _JOB_END + start]

    def next_line(start: int) -> int:
        found = payload.find(b"\n", start)
        return size if found < 0 else found + 1

    lo, hi = 0, size
    while lo < hi:
        mid = (lo + hi) // 2
        start = max(lo, payload.rfind(b"\n", lo, mid) + 1)
        here = job_at(start)
        if here is None:
            return None
        if here < job:
            lo = next_line(start)
        else:
            hi = start
    found = []
    while lo < size:
        here = job_at(lo)
        if here is None:
            return None
        if here != job:
            break
        end = next_line(lo)
        found.append(payload[lo:end].rstrip(b"\n"))
        lo = end
    return found
