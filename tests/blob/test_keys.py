"""Archive keys: deterministic, validated, the same on every backend."""

from __future__ import annotations

import unicodedata
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
        "a\ufffeb",  # noncharacters: Azure stores them, then cannot list the container
        "a\uffffb",
        "a\ufdd0b",
        "a\U0001fffeb",
        "\U0010ffff",
        "cafe\u0301",  # NFD: looks like the NFC "café" but would be a second blob
        "a\u200bb",  # zero-width space (Cf)
        "a\u202eb",  # right-to-left override (Cf)
        "\ufeffa",  # byte order mark (Cf)
        "a\u007fb",  # DEL (Cc)
        "a\u0085b",  # NEL (Cc)
        "a\ud800b",  # lone surrogate (Cs)
        "a\ue000b",  # private use (Co)
        "a\U000f0000b",  # supplementary private use (Co)
        "a\u0378b",  # unassigned (Cn)
        "a\u2028b",  # line separator (Zl)
        "a\u2029b",  # paragraph separator (Zp)
    ],
)
def test_validate_key_refuses(key: str) -> None:
    with pytest.raises(InvalidBlobKey) as caught:
        validate_key(key)
    assert isinstance(caught.value, ValueError)  # callers may catch either
    assert isinstance(caught.value, ExecstoreError)


@pytest.mark.parametrize(
    "key",
    [
        "a",
        "a/b/c.ndjson.gz",
        "日本語/ファイル",
        "emoji 🚀/x",
        "a-b_c.d/e",
        "x" * 200,
        "caf\u00e9",  # NFC
        "한국어/파일",  # precomposed Hangul syllables are NFC
        "q\u0307",  # a mark with no precomposed form stays as it is in NFC
        "a\ufffdb",  # the replacement character is an ordinary symbol
        "a\u00a0b ~!@#$%^&()[]{}'=+,;",
    ],
)
def test_validate_key_accepts(key: str) -> None:
    assert validate_key(key) == key


def test_a_non_nfc_key_is_refused_not_rewritten() -> None:
    nfd = unicodedata.normalize("NFD", "ünïcødé/café")
    with pytest.raises(InvalidBlobKey, match="NFC"):
        validate_key(nfd)
    nfc = unicodedata.normalize("NFC", nfd)
    assert validate_key(nfc) is nfc


def _follows_the_documented_rules(key: str) -> bool:
    for char in key:
        code = ord(char)
        if 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:
            return False
        if unicodedata.category(char) in {"Cc", "Cs", "Cf", "Co", "Cn", "Zl", "Zp"}:
            return False
    return unicodedata.normalize("NFC", key) == key


@given(st.text(max_size=40) | st.text(st.characters(codec="utf-8"), max_size=40))
def test_every_accepted_key_follows_the_documented_character_rules(key: str) -> None:
    try:
        validate_key(key)
    except InvalidBlobKey:
        return
    assert _follows_the_documented_rules(key)
