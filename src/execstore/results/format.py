"""How a job's result is stored: the slim summary, screenshot rows and the archived document.

Shared by the repository (``uow.results``) and the archival job for legacy rows, so that
a result saved today and a legacy result archived tomorrow look exactly the same.

``jobs.result`` summary (short keys keep it far under 300 B of jsonb)::

    {"_v": 1, "ok": true, "st": [total, successful, failed], "ms": 5400, "sc": 25, "a": 1}

``_v`` marks a summary (legacy results never carry it), ``ok`` is the run's success (or
null when the output did not say), ``st`` the step counts, ``ms`` the duration, ``sc``
the number of screenshots the output listed, and ``a`` the archive state: 1 = the full
output is archived in ``job_result_archives``, 2 = the reconciler found its blob missing
(``detail()`` then raises ArchiveMissing without touching the blob store).

Screenshot URLs are not stored whole; see :class:`ScreenshotUrls` for the convention.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from execstore.blob import ArchiveRef, archive_key
from execstore.blob.codec import serialize
from execstore.config import Codec
from execstore.repository import as_utc
from execstore.schema.enums import ArchiveCodec

__all__ = [
    "ARCHIVED",
    "ARCHIVE_LOST",
    "KEY_SUFFIX_LIMIT",
    "RESULTS_PREFIX",
    "SUMMARY_MARK",
    "ScreenshotRow",
    "ScreenshotUrls",
    "SummaryFields",
    "archive_values",
    "as_utc",
    "is_summary",
    "jsonable",
    "parse_time",
    "read_summary",
    "ref_from_row",
    "result_archive_key",
    "screenshot_rows",
    "summarize",
]

SUMMARY_MARK: Final = "_v"
ARCHIVED: Final = 1
ARCHIVE_LOST: Final = 2
RESULTS_PREFIX: Final = "results/"
KEY_SUFFIX_LIMIT: Final = 200
_SMALLINT_MAX: Final = 32767
_UNKNOWN_STEP: Final = -1

_OK_WORDS: Final = frozenset({"success", "succeeded", "successful", "completed", "passed", "ok"})
_FAIL_WORDS: Final = frozenset({"failed", "failure", "error", "errored", "timeout", "timed_out"})


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types, keeping every field (datetimes become ISO text).

    Nothing is dropped: values JSON cannot express are written as text (NaN as "NaN",
    bytes as base64, unknown objects by ``str``) so the archive is always encodable.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=serialize)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    return str(value)


def _first(output: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in output and output[name] is not None:
            return output[name]
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return round(value)
    if isinstance(value, str):
        try:
            return round(float(value))
        except ValueError:
            return None
    return None


def _smallint(value: Any, *, low: int = 0) -> int | None:
    number = _as_int(value)
    return number if number is not None and low <= number <= _SMALLINT_MAX else None


def parse_time(value: Any) -> dt.datetime | None:
    """An aware datetime from ISO text, epoch seconds or epoch milliseconds (else None)."""
    if isinstance(value, dt.datetime):
        return as_utc(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        seconds = value / 1000 if abs(value) > 1e11 else value
        try:
            return dt.datetime.fromtimestamp(seconds, dt.UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value:
        try:
            return as_utc(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _step_outcome(step: Any) -> bool | None:
    if not isinstance(step, Mapping):
        return None
    success = step.get("success")
    if isinstance(success, bool):
        return success
    status = step.get("status")
    if isinstance(status, str):
        word = status.strip().lower()
        if word in _OK_WORDS:
            return True
        if word in _FAIL_WORDS:
            return False
    return None


def summarize(output: Mapping[str, Any], *, state: int = ARCHIVED) -> dict[str, Any]:
    """The slim ``jobs.result`` summary of a full output (see the module docstring)."""
    success = _first(output, "success", "ok")
    if not isinstance(success, bool):
        status = _first(output, "status")
        word = status.strip().lower() if isinstance(status, str) else ""
        success = True if word in _OK_WORDS else False if word in _FAIL_WORDS else None
    steps = _first(output, "stepResults", "step_results", "steps")
    stats = _first(output, "stats")
    stats = stats if isinstance(stats, Mapping) else {}
    if isinstance(steps, list):
        outcomes = [_step_outcome(step) for step in steps]
        total, good, bad = len(steps), outcomes.count(True), outcomes.count(False)
    else:
        total = _as_int(_first(stats, "totalSteps", "total_steps")) or 0
        good = _as_int(_first(stats, "successfulSteps", "successful_steps")) or 0
        bad = _as_int(_first(stats, "failedSteps", "failed_steps")) or 0
    duration = _as_int(
        _first(output, "durationMs", "duration_ms", "duration") or _first(stats, "duration")
    )
    if duration is None:
        started = parse_time(_first(output, "startedAt", "started_at"))
        completed = parse_time(_first(output, "completedAt", "completed_at"))
        if started is not None and completed is not None:
            duration = round((completed - started).total_seconds() * 1000)
    shots = _first(output, "screenshots")
    count = len(shots) if isinstance(shots, list) else 0
    return {
        SUMMARY_MARK: 1,
        "ok": success,
        "st": [total, good, bad],
        "ms": duration,
        "sc": count,
        "a": state,
    }


def is_summary(result: Any) -> bool:
    """Whether a ``jobs.result`` value is an execstore summary (not a legacy full output)."""
    return isinstance(result, Mapping) and result.get(SUMMARY_MARK) == 1


@dataclass(frozen=True, slots=True)
class SummaryFields:
    """A summary read back with long names."""

    success: bool | None
    total_steps: int
    successful_steps: int
    failed_steps: int
    duration_ms: int | None
    screenshot_count: int
    state: int


def read_summary(result: Mapping[str, Any]) -> SummaryFields:
    """The fields of a stored summary; a legacy full output is summarized on the fly."""
    data = result if is_summary(result) else summarize(result, state=0)
    steps = data.get("st") or [0, 0, 0]
    ok = data.get("ok")
    return SummaryFields(
        success=ok if isinstance(ok, bool) else None,
        total_steps=int(steps[0]),
        successful_steps=int(steps[1]),
        failed_steps=int(steps[2]),
        duration_ms=_as_int(data.get("ms")),
        screenshot_count=int(data.get("sc") or 0),
        state=int(data.get("a") or 0),
    )


@dataclass(frozen=True, slots=True)
class ScreenshotUrls:
    """The screenshot URL convention: ``url == base + layout + key_suffix``.

    ``layout`` (default ``"{organization_id}/{job_id}/"``) is filled with the job's ids,
    so a conforming URL such as
    ``https://acct.blob.core.windows.net/screenshots/<org>/<job>/step-03.png`` stores only
    ``step-03.png``. URLs that do not follow it are stored in a marked form that still
    reproduces them exactly:

    - ``"~" + rest``: the URL is ``base + rest`` (it starts with the base, not the layout);
    - ``"!" + url``: the whole URL (no base configured, or a foreign host), if it fits
      VARCHAR(200);
    - ``"?" + tail``: the URL was too long to keep; the row's rebuilt URL is None and the
      exact URL is in the archived full output (``detail()``). ``tail`` is the end of the
      URL, kept as a hint for operators.
    """

    base: str | None = None
    layout: str = "{organization_id}/{job_id}/"

    def _job_prefix(self, organization_id: uuid.UUID, job_id: uuid.UUID) -> str | None:
        if not self.base:
            return None
        return self.base + self.layout.format(organization_id=organization_id, job_id=job_id)

    def key_suffix(self, url: str, organization_id: uuid.UUID, job_id: uuid.UUID) -> str:
        """What a screenshot row stores for ``url`` (at most 200 characters)."""
        prefix = self._job_prefix(organization_id, job_id)
        if prefix and url.startswith(prefix):
            rest = url[len(prefix) :]
            if rest and rest[0] not in "~!?" and len(rest) <= KEY_SUFFIX_LIMIT:
                return rest
        if self.base and url.startswith(self.base):
            rest = url[len(self.base) :]
            if len(rest) < KEY_SUFFIX_LIMIT:
                return "~" + rest
        if len(url) < KEY_SUFFIX_LIMIT:
            return "!" + url
        return "?" + url[-(KEY_SUFFIX_LIMIT - 1) :]

    def url(self, key_suffix: str, organization_id: uuid.UUID, job_id: uuid.UUID) -> str | None:
        """The URL a stored ``key_suffix`` stands for (None when it was too long to keep)."""
        marker, rest = key_suffix[:1], key_suffix[1:]
        if marker == "!":
            return rest
        if marker == "?":
            return None
        if marker == "~":
            return (self.base or "") + rest
        return (self._job_prefix(organization_id, job_id) or "") + key_suffix


@dataclass(frozen=True, slots=True)
class ScreenshotRow:
    """Values of one ``execution_screenshots`` row."""

    ordinal: int
    step_index: int
    key_suffix: str
    width: int | None
    height: int | None
    captured_at: dt.datetime

    def values(self, job_id: uuid.UUID) -> dict[str, Any]:
        """The row as insert values for ``job_id``."""
        return {
            "job_id": job_id,
            "ordinal": self.ordinal,
            "step_index": self.step_index,
            "key_suffix": self.key_suffix,
            "width": self.width,
            "height": self.height,
            "captured_at": self.captured_at,
        }


def screenshot_rows(
    screenshots: Sequence[Any],
    *,
    urls: ScreenshotUrls,
    organization_id: uuid.UUID,
    job_id: uuid.UUID,
    fallback_time: dt.datetime,
    start: int = 0,
) -> list[ScreenshotRow]:
    """Rows for the screenshot entries that have a URL, numbered from ``start``.

    Out-of-range or negative sizes become None (smallint columns); a missing or invalid
    step index becomes -1 ("unknown"); a missing capture time falls back to
    ``fallback_time``. Entries beyond ordinal 32767 are not given rows (the archived
    output keeps them).
    """
    rows: list[ScreenshotRow] = []
    ordinal = start
    for shot in screenshots:
        if ordinal > _SMALLINT_MAX:
            break
        if not isinstance(shot, Mapping):
            continue
        url = _first(shot, "url", "blobUrl", "blob_url")
        if not isinstance(url, str) or not url:
            continue
        step = _smallint(_first(shot, "stepIndex", "step_index", "step"))
        captured = parse_time(_first(shot, "capturedAt", "captured_at", "timestamp"))
        rows.append(
            ScreenshotRow(
                ordinal=ordinal,
                step_index=_UNKNOWN_STEP if step is None else step,
                key_suffix=urls.key_suffix(url, organization_id, job_id),
                width=_smallint(shot.get("width")),
                height=_smallint(shot.get("height")),
                captured_at=captured or fallback_time,
            )
        )
        ordinal += 1
    return rows


def result_archive_key(
    organization_id: uuid.UUID, job_id: uuid.UUID, created_at: dt.datetime, codec: Codec
) -> str:
    """The deterministic blob key of a job's archived output (its own organization's)."""
    return archive_key(
        "results", organization_id, as_utc(created_at), job_id, "result", codec, document=True
    )


def archive_values(job_id: uuid.UUID, ref: ArchiveRef) -> dict[str, Any]:
    """Insert values of the ``job_result_archives`` row for ``ref``."""
    return {
        "job_id": job_id,
        "blob_key": ref.key,
        "codec": ArchiveCodec[Codec(ref.codec).name],
        "sha256": ref.sha256,
        "raw_size": ref.raw_size,
        "stored_size": ref.stored_size,
        "record_count": ref.record_count,
        "format_version": ref.format_version,
    }


def ref_from_row(row: Any) -> ArchiveRef:
    """The ArchiveRef recorded by a ``job_result_archives`` row."""
    return ArchiveRef(
        key=row.blob_key,
        codec=Codec[ArchiveCodec(row.codec).name],
        sha256=bytes(row.sha256),
        raw_size=int(row.raw_size),
        stored_size=int(row.stored_size),
        record_count=int(row.record_count),
        format_version=int(row.format_version),
    )
