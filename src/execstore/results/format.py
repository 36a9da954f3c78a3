"""How a job's result is stored: the slim summary, screenshot rows and the archived document.

Shared by the repository (``uow.results``) and the archival job for legacy rows, so that
a result saved today and a legacy result archived tomorrow look exactly the same.

``jobs.result`` summary (short keys keep it far under 300 B of jsonb)::

    {"_v": 1, "ok": true, "st": [total, successful, failed], "ms": 5400, "sc": 25, "a": 1}

``_v`` marks a summary (legacy results never carry it), ``ok`` is the run's success (or
null when the output did not say), ``st`` the step counts, ``ms`` the duration, ``sc``
the number of screenshots the output listed, and ``a`` = 1: the full output is archived
in ``job_result_archives`` (whose ``lost`` says when the reconciler found its blob
missing, as for every archive pointer).

Screenshot rows keep only what cannot be derived from a conforming URL; any other URL
is stored whole (see :class:`ScreenshotUrls`). The archived document's key is derived
from the job (:func:`result_archive_key`), so the pointer row does not store it.

What a caller may hand over is the JSON contract of :mod:`execstore.jsonvalues`;
:func:`summarize` reads any JSON value without raising.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from execstore.archival.pointers import archive_ref, pointer_values
from execstore.blob import ArchiveRef, archive_key
from execstore.blob.keys import file_suffix
from execstore.config import Codec
from execstore.repository import as_utc

__all__ = [
    "ARCHIVED",
    "RESULTS_PREFIX",
    "RESULT_NAME",
    "SUMMARY_MARK",
    "ScreenshotRow",
    "ScreenshotUrls",
    "SummaryFields",
    "archive_values",
    "as_utc",
    "is_summary",
    "parse_result_key",
    "parse_time",
    "read_summary",
    "ref_from_row",
    "result_archive_key",
    "screenshot_rows",
    "summarize",
]

SUMMARY_MARK: Final = "_v"
ARCHIVED: Final = 1
RESULTS_PREFIX: Final = "results/"
RESULT_NAME: Final = "result"
_SMALLINT_MAX: Final = 32767
_BIGINT: Final = 2**63
_INT_MAX: Final = 2**31 - 1
_UNKNOWN_STEP: Final = -1
_MARKERS: Final = "~!"

_OK_WORDS: Final = frozenset({"success", "succeeded", "successful", "completed", "passed", "ok"})
_FAIL_WORDS: Final = frozenset({"failed", "failure", "error", "errored", "timeout", "timed_out"})


def _first(output: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in output and output[name] is not None:
            return output[name]
    return None


def _as_int(value: Any) -> int | None:
    """An integer read from a number or numeric text; None for anything else.

    Infinite, NaN and out-of-range values ("Infinity", 1e400, 10**30) are None too: a
    summary field holds a signed 64-bit integer or nothing.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = round(value)
    if isinstance(value, int) and -_BIGINT <= value < _BIGINT:
        return value
    return None


def _count(value: Any) -> int:
    """A step count: a non-negative integer that fits ``integer``, else 0."""
    number = _as_int(value)
    return number if number is not None and 0 <= number <= _INT_MAX else 0


def _smallint(value: Any, *, low: int = 0) -> int | None:
    number = _as_int(value)
    return number if number is not None and low <= number <= _SMALLINT_MAX else None


def parse_time(value: Any) -> dt.datetime | None:
    """An aware datetime from ISO text, epoch seconds or epoch milliseconds (else None)."""
    try:
        if isinstance(value, dt.datetime):
            return as_utc(value)
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float) and math.isfinite(value):
            seconds = value / 1000 if abs(value) > 1e11 else value
            return dt.datetime.fromtimestamp(seconds, dt.UTC)
        if isinstance(value, str) and value:
            return as_utc(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
    except (OverflowError, OSError, ValueError):
        # Out of the representable range (year 1 or 9999 moved across UTC) or not a time.
        return None
    return None


def _duration(output: Mapping[str, Any], stats: Mapping[str, Any]) -> int | None:
    """The run's duration in ms: flat (``durationMs``...) or the plan's ``stats.duration``."""
    for source in (output, stats):
        for name in ("durationMs", "duration_ms", "duration"):
            number = _as_int(source.get(name))
            if number is not None:
                return number
    started = parse_time(_first(output, "startedAt", "started_at"))
    completed = parse_time(_first(output, "completedAt", "completed_at"))
    if started is not None and completed is not None:
        return _as_int((completed - started).total_seconds() * 1000)
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
    """The slim ``jobs.result`` summary of a full output (see the module docstring).

    Reads the flat shape (``success``, ``stepResults``, ``durationMs``...) and the plan's
    (``stats: {totalSteps, successfulSteps, failedSteps, duration}``), in camelCase or
    snake_case. What it cannot read becomes null or 0; it never raises for a JSON value.
    """
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
        total = _count(_first(stats, "totalSteps", "total_steps"))
        good = _count(_first(stats, "successfulSteps", "successful_steps"))
        bad = _count(_first(stats, "failedSteps", "failed_steps"))
    duration = _duration(output, stats)
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
    if not isinstance(result, Mapping):
        return False
    mark = result.get(SUMMARY_MARK)
    # The number 1 (as the SQL filters read it): ``true`` or ``"1"`` is a legacy output's key.
    return type(mark) in (int, float) and mark == 1


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
    ``step-03.png``. URLs that do not follow it are stored whole, in a marked form, so
    every URL comes back exactly as it was saved, whatever its length:

    - ``"~" + rest``: the URL is ``base + rest`` (it starts with the base, not the layout);
    - ``"!" + url``: the whole URL (no base configured, or another host or container,
      for example a signed SAS URL).
    """

    base: str | None = None
    layout: str = "{organization_id}/{job_id}/"

    def _job_prefix(self, organization_id: uuid.UUID, job_id: uuid.UUID) -> str | None:
        if not self.base:
            return None
        return self.base + self.layout.format(organization_id=organization_id, job_id=job_id)

    def key_suffix(self, url: str, organization_id: uuid.UUID, job_id: uuid.UUID) -> str:
        """What a screenshot row stores for ``url`` (the URL is always recoverable)."""
        prefix = self._job_prefix(organization_id, job_id)
        if prefix and url.startswith(prefix):
            rest = url[len(prefix) :]
            if rest and rest[0] not in _MARKERS:
                return rest
        if self.base and url.startswith(self.base):
            return "~" + url[len(self.base) :]
        return "!" + url

    def url(self, key_suffix: str, organization_id: uuid.UUID, job_id: uuid.UUID) -> str:
        """The URL a stored ``key_suffix`` stands for."""
        marker, rest = key_suffix[:1], key_suffix[1:]
        if marker == "!":
            return rest
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
        if not isinstance(url, str) or not url or "\x00" in url:
            continue  # no URL (a NUL is no URL either; the archive keeps the entry)
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
    """The blob key of a job's archived output: ``results/<org>/<yyyy>/<mm>/<job>/result.json.gz``.

    Derived, never stored: the job's organization, the UTC month of its ``created_at``,
    its id and the codec (``.json.zst`` for zstd) never change.
    """
    return archive_key(
        "results", organization_id, as_utc(created_at), job_id, RESULT_NAME, codec, document=True
    )


def parse_result_key(key: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The (organization id, job id) a result key names, or None if it is not one."""
    parts = key.split("/")
    if len(parts) != 6 or parts[0] != RESULTS_PREFIX.rstrip("/"):
        return None
    if parts[5] not in _RESULT_FILES:
        return None
    try:
        return uuid.UUID(parts[1]), uuid.UUID(parts[4])
    except ValueError:
        return None


_RESULT_FILES: Final = frozenset(RESULT_NAME + file_suffix(codec, document=True) for codec in Codec)


def archive_values(
    job_id: uuid.UUID, ref: ArchiveRef, *, archived_at: dt.datetime
) -> dict[str, Any]:
    """Insert values of the ``job_result_archives`` row for ``ref`` (the key is derived)."""
    return {"job_id": job_id, **pointer_values(ref, archived_at=archived_at, keyed=False)}


def ref_from_row(row: Any, *, organization_id: uuid.UUID, created_at: dt.datetime) -> ArchiveRef:
    """The ArchiveRef a ``job_result_archives`` row of the job (``organization_id``,
    ``created_at``) records; its key is derived, its record count is always one."""
    key = result_archive_key(organization_id, row.job_id, created_at, Codec.of(row.codec))
    return archive_ref(row, key=key)
