"""The one page, cursor codec and limit rule every listing shares (``execstore.pages``)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid

import pytest

from execstore.errors import InvalidArgument, InvalidCursor
from execstore.pages import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Page,
    check_limit,
    decode_cursor,
    encode_cursor,
)

WHEN = dt.datetime(2026, 3, 2, 9, 30, 1, 123456, tzinfo=dt.UTC)
JOB = uuid.UUID("6f1c2f0e-8d2b-4a57-9a39-0d5b8f1e2a77")
SHAPE = (dt.datetime, uuid.UUID)


def _forged(values: list[object]) -> str:
    """A cursor whose checksum is right (the key is in the source) around any JSON."""
    from execstore import pages

    body = json.dumps(values).encode()
    mac = hashlib.blake2b(body, key=pages._KEY, digest_size=pages._MAC_BYTES).digest()
    return "c1." + base64.urlsafe_b64encode(mac + body).decode().rstrip("=")


def test_the_limit_rule_is_one_to_a_thousand_and_only_ints() -> None:
    assert (DEFAULT_LIMIT, MAX_LIMIT) == (50, 1000)
    assert check_limit(1) == 1
    assert check_limit(1000) == 1000
    for bad in (0, -1, 1001, 2**64, True, False, 1.0, "5", None, float("nan")):
        with pytest.raises(InvalidArgument, match="limit must be an integer from 1 to 1000"):
            check_limit(bad)


def test_a_cursor_round_trips_its_position() -> None:
    cursor = encode_cursor("executions", (WHEN, JOB))
    assert cursor.startswith("c1.")
    assert len(cursor) < 150
    assert decode_cursor("executions", cursor, SHAPE) == (WHEN, JOB)
    extremes = (
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(1969, 7, 20, 20, 17, tzinfo=dt.UTC),
    )
    for when in extremes:
        assert decode_cursor("logs", encode_cursor("logs", (when, 2**63 - 1)), (dt.datetime, int))
        assert decode_cursor("logs", encode_cursor("logs", (when, -(2**63))), (dt.datetime, int))


def test_a_cursor_altered_anywhere_is_refused() -> None:
    cursor = encode_cursor("executions", (WHEN, JOB))
    for i in range(3, len(cursor)):
        for replacement in "AB":
            if cursor[i] == replacement:
                continue
            altered = cursor[:i] + replacement + cursor[i + 1 :]
            with pytest.raises(InvalidCursor):
                decode_cursor("executions", altered, SHAPE)
    for bad in (cursor[:-1], cursor + "A", "c2" + cursor[2:], cursor.upper()):
        with pytest.raises(InvalidCursor):
            decode_cursor("executions", bad, SHAPE)


def test_a_cursor_of_another_listing_is_refused() -> None:
    cursor = encode_cursor("rule_usage", (WHEN, JOB))
    with pytest.raises(InvalidCursor, match="executions"):
        decode_cursor("executions", cursor, SHAPE)


def test_text_that_is_not_a_cursor_is_refused() -> None:
    long = "c1." + "A" * 1000
    for bad in ("", "c1.", "c1.!!!", long, "v1.1.1", "m1AAAA", "c1.é", 7, None, b"c1."):
        with pytest.raises(InvalidCursor):
            decode_cursor("executions", bad, SHAPE)


def test_a_forged_payload_of_the_wrong_shape_or_range_is_refused() -> None:
    # The checksum's key is public: what stands behind it is checked as well.
    assert decode_cursor("logs", _forged(["logs", 0, 1]), (dt.datetime, int))[1] == 1
    for values in (
        ["logs", 0],  # too few
        ["logs", 0, 1, 2],  # too many
        ["logs", "0", 1],  # a string for a time
        ["logs", 0, True],  # a bool for an int
        ["logs", 0, 1.5],
        ["logs", 0, 2**63],  # past a 64-bit id
        ["logs", 0, -(2**63) - 1],
        ["logs", 10**40, 1],  # past year 9999
        ["logs", -(10**40), 1],
        ["logs", 0, None],
        {"logs": 1},
        [],
        "logs",
    ):
        with pytest.raises(InvalidCursor):
            decode_cursor("logs", _forged(values), (dt.datetime, int))  # type: ignore[arg-type]
    for bad_uuid in ("", "zz" * 16, JOB.hex + "0", 5):
        with pytest.raises(InvalidCursor):
            decode_cursor("executions", _forged(["executions", 0, bad_uuid]), SHAPE)
    nested = "[" * 200 + "]" * 200
    with pytest.raises(InvalidCursor):
        decode_cursor("logs", _forged(json.loads(nested)), (dt.datetime, int))


def test_a_page_is_frozen_and_says_when_it_is_the_last() -> None:
    page = Page[int](items=[1, 2])
    assert page.next_cursor is None
    with pytest.raises(ValueError, match="frozen"):
        page.next_cursor = "c1.x"  # type: ignore[misc]
