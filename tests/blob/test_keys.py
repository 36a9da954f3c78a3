"""Archive keys: deterministic, validated, the same on every backend."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from execstore.blob import InvalidBlobKey, archive_key, validate_key
from execstore.config import Codec
from execstore.errors import ExecstoreError

ORG = uuid.UUID("8d1c6f0e-2f7a-4c36-9b1e-1f0c2a3b4c5d")
JOB = uuid.UUID("0b5e4a52-6c1d-4f0e-a0f7-6e2f1d3c4b5a")
WHEN = datetime(2024, 3, 31, 23, 30, tzinfo=UTC)


def test_key_layout() -> None:
    assert archive_key("logs", ORG, WHEN, JOB, "part-0001") == (
        f"logs/{ORG}/2024/03/{JOB}/part-0001.ndjson.gz"
    )
    assert archive_key("results", ORG, WHEN, JOB, "result", Codec.ZSTD, document=True) == (
        f"results/{ORG}/2024/03/{JOB}/result.json.zst"
    )


def test_same_input_same_key_and_the_instant_not_the_zone_decides() -> None:
    first = archive_key("audit", ORG, WHEN, JOB, "a")
    assert archive_key("audit", ORG, WHEN, JOB, "a") == first
    # 23:30 UTC on March 31st is already April 1st in UTC+2: the bucket follows UTC.
    same_instant = WHEN.astimezone(timezone(timedelta(hours=2)))
    assert archive_key("audit", ORG, same_instant, JOB, "a") == first
    assert archive_key("audit", str(ORG), WHEN, str(JOB), "a") == first


def test_different_inputs_different_keys() -> None:
    keys = {
        archive_key("logs", ORG, WHEN, JOB, "a"),
        archive_key("logs", ORG, WHEN, JOB, "b"),
        archive_key("logs", ORG, WHEN + timedelta(days=1), JOB, "a"),
        archive_key("logs", ORG, WHEN, uuid.uuid4(), "a"),
        archive_key("audit", ORG, WHEN, JOB, "a"),
        archive_key("logs", ORG, WHEN, JOB, "a", Codec.ZSTD),
    }
    assert len(keys) == 6


@pytest.mark.parametrize(
    ("kind", "org", "when", "job", "name"),
    [
        ("screenshots", ORG, WHEN, JOB, "a"),  # not an archive kind
        ("logs", "../etc", WHEN, JOB, "a"),
        ("logs", "a/b", WHEN, JOB, "a"),
        ("logs", "", WHEN, JOB, "a"),
        ("logs", True, WHEN, JOB, "a"),
        ("logs", -1, WHEN, JOB, "a"),
        ("logs", ORG, datetime(2024, 3, 1), JOB, "a"),  # naive: which month?
        ("logs", ORG, WHEN, JOB, "../x"),
        ("logs", ORG, WHEN, JOB, "a/b"),
        ("logs", ORG, WHEN, JOB, ".hidden"),
        ("logs", ORG, WHEN, JOB, ""),
        ("logs", ORG, WHEN, JOB, "x" * 200),
    ],
)
def test_invalid_parts_are_refused(
    kind: str, org: object, when: datetime, job: object, name: str
) -> None:
    with pytest.raises(InvalidBlobKey):
        archive_key(kind, org, when, job, name)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/a",
        "a//b",
        "a/",
        "..",
        "a/../b",
        "./a",
        "a/.b",
        "a\x00b",
        "a\nb",
        "a\\b",
        "a /b",
        "a./b",
        "x" * 1025,
        "a/" + "é" * 101,
    ],
)
def test_validate_key_refuses(key: str) -> None:
    with pytest.raises(InvalidBlobKey) as caught:
        validate_key(key)
    assert isinstance(caught.value, ValueError)  # callers may catch either
    assert isinstance(caught.value, ExecstoreError)


@pytest.mark.parametrize(
    "key", ["a", "a/b/c.ndjson.gz", "日本語/ファイル", "emoji 🚀/x", "a-b_c.d/e", "x" * 200]
)
def test_validate_key_accepts(key: str) -> None:
    assert validate_key(key) == key
