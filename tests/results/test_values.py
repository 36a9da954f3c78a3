"""The JSON contract of a saved result: exact round trips, or a typed error before any write.

Defects A (infinities escaped as OverflowError), E (colliding keys lost one), F (silent
coercion) and H (deep nesting raised RecursionError), on both backends.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import enum
import math
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from execstore.errors import ExecstoreError, InvalidJsonValue
from execstore.jsonvalues import MAX_DEPTH, check_json
from execstore.schema import models as m

from .conftest import make_output, result_blobs, results_of


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def nested(depth: int) -> Any:
    """``depth`` containers, alternating objects and arrays, around a number."""
    value: Any = 1
    for level in range(depth):
        value = {"d": value} if level % 2 else [value]
    return value


REFUSED = [
    # (the output, the JSON path named, a word of the reason)
    ({"durationMs": float("inf")}, "$.durationMs", "inf"),
    ({"durationMs": float("-inf")}, "$.durationMs", "inf"),
    ({"ratio": float("nan")}, "$.ratio", "nan"),
    ({"amount": decimal.Decimal("Infinity")}, "$.amount", "Decimal"),
    ({"amount": decimal.Decimal("1.10")}, "$.amount", "Decimal"),
    ({"screenshots": [{"url": "u", "width": float("inf")}]}, "$.screenshots[0].width", "inf"),
    ({"m": {1: "int key", "1": "str key"}}, "$.m", "key 1"),
    ({"m": {(1, 2): "tuple key"}}, "$.m", "not str"),
    ({"when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}, "$.when", "isoformat"),
    ({"day": dt.date(2024, 1, 1)}, "$.day", "isoformat"),
    ({"blob": b"\x00\x01"}, "$.blob", "bytes"),
    ({"tags": {"a", "b"}}, "$.tags", "set"),
    ({"pair": (1, 2)}, "$.pair", "tuple"),
    ({"id": uuid.UUID(int=1)}, "$.id", "UUID"),
    ({"color": Color.RED}, "$.color", "Color"),
    ({"level": Level.HIGH}, "$.level", "subclass of int"),
    ({"od": collections.OrderedDict(a=1)}, "$.od", "OrderedDict"),
    ({"text": "lone \ud800 surrogate"}, "$.text", "surrogate"),
    ({"a b": {"c": [0, object()]}}, '$["a b"].c[1]', "object"),
    ({"big": 10**4000}, "$.big", "4000 digits"),
    ({"deep": nested(MAX_DEPTH)}, "$.deep.d[0].d[0]", "deeper than 100"),
    ({"deep": nested(600)}, "$.deep", "deeper than 100"),
]


@pytest.mark.parametrize(("value", "path", "word"), REFUSED, ids=[r[1] for r in REFUSED])
def test_values_outside_json_are_refused_naming_the_path(value: Any, path: str, word: str) -> None:
    with pytest.raises(InvalidJsonValue) as refused:
        check_json(value)
    assert isinstance(refused.value, ExecstoreError)
    assert isinstance(refused.value, ValueError)
    assert refused.value.path.startswith(path)
    assert word.lower() in refused.value.reason.lower()
    assert path in str(refused.value)


def test_the_depth_limit_is_exact() -> None:
    check_json(nested(MAX_DEPTH))  # the document itself counts as one level
    with pytest.raises(InvalidJsonValue, match="deeper than 100"):
        check_json(nested(MAX_DEPTH + 1))


def test_a_self_referencing_value_is_refused_not_a_recursion_error() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(InvalidJsonValue, match="deeper"):
        check_json(loop)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",))), children, max_size=4
        )
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_every_json_value_is_accepted(value: Any) -> None:
    check_json(value)


async def nothing_written(store: Any, job: uuid.UUID) -> None:
    assert await result_blobs(store) == []
    async with store.sessions() as session:
        result = await session.scalar(sa.select(m.Job.result).where(m.Job.id == job))
        archive = await session.get(m.JobResultArchive, job)
        shots = await session.scalar(
            sa.select(sa.func.count()).where(m.ExecutionScreenshot.job_id == job)
        )
    assert (result, archive, shots) == (None, None, 0)


SAVE_REFUSED = [
    ({"durationMs": float("inf")}, "$.durationMs"),
    ({"durationMs": decimal.Decimal("Infinity")}, "$.durationMs"),
    ({"screenshots": [{"url": "https://x/y.png", "width": float("inf")}]}, "$.screenshots[0]"),
    ({"m": {1: "int key", "1": "str key"}}, "$.m"),
    ({"ratio": float("nan")}, "$.ratio"),
    ({"when": dt.datetime(2024, 1, 1, tzinfo=dt.UTC)}, "$.when"),
    ({"deep": nested(500)}, "$.deep"),
]


@pytest.mark.parametrize(("extra", "path"), SAVE_REFUSED, ids=[p for _, p in SAVE_REFUSED])
async def test_save_refuses_before_writing_anything(
    store: Any, org: uuid.UUID, job: uuid.UUID, extra: dict[str, Any], path: str
) -> None:
    output = {**make_output(org, job), **extra}
    with pytest.raises(InvalidJsonValue) as refused:
        async with store.unit(org) as uow:
            await results_of(uow).save(job, output)
    assert refused.value.path.startswith(path)
    await nothing_written(store, job)


async def test_save_refuses_a_top_level_that_is_not_an_object(
    store: Any, org: uuid.UUID, job: uuid.UUID
) -> None:
    for value in ([1, 2], "text", None, collections.OrderedDict(success=True)):
        with pytest.raises(InvalidJsonValue, match=r"at \$:"):
            async with store.unit(org) as uow:
                await uow.results.save(job, value)  # type: ignore[arg-type]
    await nothing_written(store, job)


async def test_json_values_round_trip_exactly(store: Any, org: uuid.UUID, job: uuid.UUID) -> None:
    output = {
        "success": True,
        "durationMs": "Infinity",  # text, kept as text; the summary has no duration
        "floats": [0.1, -0.0, 1e308, 5e-324, 2.5],
        "ints": [0, -1, 2**63, -(2**70), 10**3999],
        "text": ["", "\x00nul", "é\u0301 nfd", "emoji \U0001f600", "\u2028"],
        "1": "a key that looks like a number",
        "": "an empty key",
        "nested": nested(MAX_DEPTH - 1),
        "nothing": None,
        "flags": [True, False],
    }
    async with store.unit(org) as uow:
        saved = await uow.results.save(job, output)
    async with store.unit(org) as uow:
        detail = await uow.results.detail(job)
    assert saved.duration_ms is None
    assert detail is not None
    assert detail.output == output
    assert [type(v) for v in detail.output["ints"]] == [int] * 5
    assert math.copysign(1, detail.output["floats"][1]) == -1
