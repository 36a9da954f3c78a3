"""Log metadata encoding: the orjson front (the ``fast`` extra) never changes a value.

(Without orjson installed both paths are the standard encoder and these still hold.)

Whatever the standard encoder accepts, the front encodes to the same JSON value; whatever
it refuses, the front refuses too. A uuid is stored as its text and an Enum member as
its value, on both paths.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execstore.logs.encoding import encode_json, fast_encode, standard_encode


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


@dataclasses.dataclass
class Point:
    x: int


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.uuids()
    | st.sampled_from([Colour.RED, Level.HIGH, Name("n"), dt.date(2026, 1, 1), Point(1)])
)
keys = st.text() | st.integers(min_value=-5, max_value=5) | st.booleans()
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(keys, inner, max_size=4)
    ),
    max_leaves=12,
)


def _outcome(encode: Any, value: Any) -> tuple[str, Any]:
    try:
        text = encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        return ("refused", type(exc).__name__)
    return ("value", json.loads(text))


@settings(max_examples=400, deadline=None)
@given(values)
def test_the_fast_front_agrees_with_the_standard_encoder(value: Any) -> None:
    fast, standard = _outcome(fast_encode, value), _outcome(standard_encode, value)
    if fast[0] == "refused" or standard[0] == "refused":
        assert fast[0] == standard[0] == "refused", (fast, standard)
    else:
        assert fast == standard


def test_documented_conversions_and_refusals() -> None:
    assert json.loads(encode_json({"u": uuid.UUID(int=5), "c": Colour.RED, "l": Level.HIGH})) == {
        "u": "00000000-0000-0000-0000-000000000005",
        "c": "red",
        "l": 3,
    }
    for bad in ({"n": math.nan}, {"i": -math.inf}, {"d": dt.datetime(2026, 1, 1)}, {"o": object()}):
        with pytest.raises((TypeError, ValueError)):
            encode_json(bad)
    # null stays null; NUL characters are removed on the fast path too.
    assert encode_json({"a": None, "b": "x\x00y"}) == '{"a":null,"b":"xy"}'
