"""The one legacy-id mapping, in Python and as SQL on both backends."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from execstore.config import load_settings
from execstore.db import create_engine
from execstore.ids import legacy_uuid, legacy_uuid_sql

CANONICAL = uuid.UUID("0b6f1c2e-9a5d-4c3b-8e7f-112233445566")
CASES = {
    "0b6f1c2e-9a5d-4c3b-8e7f-112233445566": CANONICAL,
    "0B6F1C2E-9A5D-4C3B-8E7F-112233445566": CANONICAL,
    "{0b6f1c2e-9a5d-4c3b-8e7f-112233445566}": CANONICAL,
    "{0B6F1C2E-9A5D-4C3B-8E7F-112233445566}": CANONICAL,
    "0b6f1c2e9a5d4c3b8e7f112233445566": CANONICAL,
    # A cuid and other non-uuids map to md5(text), deterministically.
    "cjld2cjxh0000qzrmn831i7rn": uuid.UUID(hashlib.md5(b"cjld2cjxh0000qzrmn831i7rn").hexdigest()),
    "{0b6f1c2e-9a5d-4c3b-8e7f-112233445566": uuid.UUID(
        hashlib.md5(b"{0b6f1c2e-9a5d-4c3b-8e7f-112233445566").hexdigest()
    ),
    " 0b6f1c2e-9a5d-4c3b-8e7f-112233445566": uuid.UUID(
        hashlib.md5(b" 0b6f1c2e-9a5d-4c3b-8e7f-112233445566").hexdigest()
    ),
    "urn:uuid:0b6f1c2e-9a5d-4c3b-8e7f-112233445566": uuid.UUID(
        hashlib.md5(b"urn:uuid:0b6f1c2e-9a5d-4c3b-8e7f-112233445566").hexdigest()
    ),
}


@pytest.mark.parametrize(("text", "expected"), list(CASES.items()))
def test_legacy_ids_map_to_one_uuid(text: str, expected: uuid.UUID) -> None:
    assert legacy_uuid(text) == expected


def test_a_uuid_is_itself_and_other_types_are_refused() -> None:
    assert legacy_uuid(CANONICAL) is CANONICAL
    with pytest.raises(TypeError):
        legacy_uuid(42)  # type: ignore[arg-type]


async def _sql_mapping(url: str, texts: list[str], dialect: str) -> list[str]:
    engine = create_engine(load_settings(database_url=url))
    try:
        async with engine.connect() as conn:
            values = sa.union_all(
                *(sa.select(sa.cast(sa.literal(t), sa.Text).label("t")) for t in texts)
            ).subquery()
            rows = await conn.execute(
                sa.select(values.c.t, sa.cast(legacy_uuid_sql(values.c.t, dialect), sa.Text))
            )
            found = dict(rows.all())
    finally:
        await engine.dispose()
    return [str(uuid.UUID(found[t])) for t in texts]


async def test_sql_twin_agrees_with_python(db_url: str, backend: str) -> None:
    texts = [*CASES, "c" + "x" * 24, "00000000-0000-0000-0000-000000000000", "ÿ-ünï-cödé"]
    dialect = "postgresql" if backend == "postgres" else "sqlite"
    assert await _sql_mapping(db_url, texts, dialect) == [str(legacy_uuid(t)) for t in texts]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            min_size=1,
            max_size=40,
        )
        | st.uuids().map(str).map(str.upper),
        min_size=1,
        max_size=20,
        unique=True,
    )
)
async def test_sql_twin_agrees_on_arbitrary_text(texts: list[str]) -> None:
    # Hypothesis drives the SQLite twin here (fast, in-process); PostgreSQL is covered above.
    url = "sqlite+aiosqlite:///:memory:"
    assert await _sql_mapping(url, texts, "sqlite") == [str(legacy_uuid(t)) for t in texts]
