"""append's one-pass validation agrees with the entry-by-entry one, line for line."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from execstore.errors import InvalidLogEntry
from execstore.logs import NewLogEntry
from execstore.logs.prepare import STEP_NAME_LIMIT, prepare_entries, prepare_rows

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
LONG_NAME = "s" * (STEP_NAME_LIMIT + 10)


def test_rows_match_prepare_entries_across_runs_of_steps() -> None:
    job = uuid.uuid4()
    entries: list[Any] = [
        NewLogEntry("a", step_index=1, step_name="Log in"),
        NewLogEntry("b", step_index=1, step_name="Log in", metadata={"k": [1, "x"]}),
        {"message": "c", "stepIndex": 2, "stepName": LONG_NAME, "level": "warning"},
        {"message": "d", "stepIndex": 2, "stepName": LONG_NAME},
        NewLogEntry("e", step_index=1, step_name="Log in", timestamp=dt.datetime(2025, 1, 2)),
        NewLogEntry("f", step_index=1, step_name=None, duration_ms=7),
    ]
    known = {(1, "Log in"): 10}
    rows, missing, months = prepare_rows(entries, now=NOW, job_id=job, steps=known)
    lines = prepare_entries(entries, now=NOW)
    assert len(rows) == len(lines) == len(entries)
    for row, line in zip(rows, lines, strict=True):
        assert row[0] == line.timestamp
        assert row[1] == job
        assert row[2] == known.get(line.step)
        assert row[3:] == (line.duration_ms, line.level, line.message, line.metadata)
    fitted = lines[2].step
    assert fitted[1] is not None
    assert len(fitted[1]) <= STEP_NAME_LIMIT
    assert missing == {fitted: [2, 3], (1, None): [5]}
    assert months == {NOW, dt.datetime(2025, 1, 1, tzinfo=dt.UTC)}


@pytest.mark.parametrize("bad", [True, 2**40, "1"])
def test_a_bad_step_index_after_a_good_run_is_refused(bad: Any) -> None:
    entries = [NewLogEntry("a", step_index=1), NewLogEntry("b", step_index=bad)]
    with pytest.raises(InvalidLogEntry) as caught:
        prepare_rows(entries, now=NOW, job_id=uuid.uuid4(), steps={})
    assert caught.value.index == 1
