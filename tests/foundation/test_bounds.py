"""Every stated bound at its value, one below and one above.

Settings (each refused just outside its range with a message naming the variable,
accepted at both ends), JSON integers of 4,000 digits, column text limits and the
truncation marker, and the archive cache's byte bound.
"""

from __future__ import annotations

from typing import Any

import pytest

from execstore.blob import ArchiveCache
from execstore.config import AUDIT_RETENTION_FLOOR_DAYS, load_settings
from execstore.errors import ConfigurationError, InvalidJsonValue
from execstore.jsonvalues import MAX_INT_DIGITS, check_json
from execstore.textlimits import TRUNCATION_MARKER, fit_text

# (setting, values refused, values accepted, other settings the values need)
SETTINGS: list[tuple[str, list[Any], list[Any], dict[str, Any]]] = [
    ("audit_checkpoint_hours", [0, 25], [1, 24], {}),
    ("audit_retention_days", [AUDIT_RETENTION_FLOOR_DAYS - 1, 36_501], [2192, 36_500], {}),
    ("audit_hot_days", [0, 3651], [1, 3650], {}),
    ("log_hot_days", [0, 3651], [1, 3650], {"log_retention_days": 3650}),
    ("log_retention_days", [59, 36_501], [60, 36_500], {"log_hot_days": 60}),
    ("log_months_ahead", [0, 61], [1, 60], {}),
    ("log_archive_chunk_rows", [0, 1_000_001], [1, 1_000_000], {}),
    ("cache_bytes", [-1], [0, 1], {}),
]


@pytest.mark.parametrize(
    ("name", "refused", "accepted", "others"), SETTINGS, ids=[s[0] for s in SETTINGS]
)
def test_settings_at_their_bounds(
    name: str, refused: list[Any], accepted: list[Any], others: dict[str, Any]
) -> None:
    for value in refused:
        with pytest.raises(ConfigurationError, match=f"EXECSTORE_{name.upper()}|{name}"):
            load_settings(**{name: value}, **others)
    for value in accepted:
        assert getattr(load_settings(**{name: value}, **others), name) == value


def test_the_six_year_floor_is_2192_days() -> None:
    assert AUDIT_RETENTION_FLOOR_DAYS == 2192
    assert load_settings().audit_retention_days == 2192


def test_integers_of_4000_digits_are_json_4001_are_not() -> None:
    assert MAX_INT_DIGITS == 4000
    largest = 10**4000 - 1
    assert len(str(largest)) == 4000
    for value in (largest, -largest, 0, -1):
        check_json({"n": value})
    for value in (10**4000, -(10**4000)):
        with pytest.raises(InvalidJsonValue, match="4000 digits"):
            check_json({"n": value})


@pytest.mark.parametrize("limit", [len(TRUNCATION_MARKER) + 1, 50, 500, 8000])
def test_text_at_its_limit_is_kept_one_over_is_cut_to_the_limit_with_the_marker(
    limit: int,
) -> None:
    exact = "x" * (limit - 1) + "é"
    assert fit_text(exact, limit) == exact
    over = fit_text(exact + "y", limit)
    assert over is not None
    assert len(over) == limit
    assert over.endswith(TRUNCATION_MARKER)
    assert over == exact[: limit - len(TRUNCATION_MARKER)] + TRUNCATION_MARKER
    assert fit_text(over, limit) == over
    with_nul = "\x00" + exact  # one over, but the NUL goes first
    assert fit_text(with_nul, limit) == exact


def test_the_cache_holds_exactly_its_bytes() -> None:
    cache = ArchiveCache(max_bytes=1000)
    assert cache.put("whole", b"s" * 32, bytes(1000))  # exactly the bound: cached
    assert cache.stats().current_bytes == 1000
    assert cache.put("one", b"s" * 32, bytes(1))  # one byte more: the LRU entry goes
    stats = cache.stats()
    assert (stats.entries, stats.current_bytes, stats.evictions) == (1, 1, 1)
    assert cache.get("whole", b"s" * 32) is None
    assert not cache.put("over", b"s" * 32, bytes(1001))  # over the bound: never cached
    split = ArchiveCache(max_bytes=1000)
    assert split.put("a", b"s" * 32, bytes(400))
    assert split.put("b", b"s" * 32, bytes(600))  # together exactly the bound: both stay
    assert (split.stats().entries, split.stats().evictions) == (2, 0)
