"""Text limits: properties of fit_text, and the column type enforcing them on both backends."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from execstore.schema import models as m
from execstore.textlimits import TRUNCATION_MARKER, fit_text, limit_of, strip_nul_json

texts = st.text(alphabet=st.characters(codec="utf-8") | st.just("\x00"), max_size=400)
limits = st.integers(min_value=0, max_value=300)


@given(texts, limits)
def test_never_over_the_limit(value: str, limit: int) -> None:
    fitted = fit_text(value, limit)
    assert fitted is not None
    assert len(fitted) <= limit
    assert "\x00" not in fitted


@given(texts, limits)
def test_idempotent(value: str, limit: int) -> None:
    once = fit_text(value, limit)
    assert fit_text(once, limit) == once


@given(texts)
def test_short_input_unchanged_but_for_nul(value: str) -> None:
    assert fit_text(value, len(value) + 5) == value.replace("\x00", "")


@given(
    st.text(st.characters(exclude_characters="\x00", codec="utf-8"), min_size=1, max_size=50),
    st.integers(min_value=len(TRUNCATION_MARKER) + 1, max_value=40),
)
def test_cut_values_keep_a_prefix_and_the_marker(value: str, limit: int) -> None:
    long_value = value * 41  # always longer than the largest limit drawn: always cut
    fitted = fit_text(long_value, limit)
    assert fitted is not None
    assert len(fitted) == limit
    assert fitted.endswith(TRUNCATION_MARKER)
    assert long_value.startswith(fitted[: -len(TRUNCATION_MARKER)])


def test_never_splits_a_surrogate_pair() -> None:
    raw = "ab" + "\ud83d\ude00" * 30  # a pair kept as two code points (surrogatepass text)
    fitted = fit_text(raw, 20)
    assert fitted is not None
    body = fitted[: -len(TRUNCATION_MARKER)]
    assert not ("\ud800" <= body[-1] <= "\udbff")


def test_json_nul_stripped_everywhere() -> None:
    assert strip_nul_json({"a\x00": ["x\x00y", {"k": "\x00"}], "n": 1}) == {
        "a": ["xy", {"k": ""}],
        "n": 1,
    }


def test_limits_come_from_the_model() -> None:
    assert limit_of(m.Job.error_message) == 2000
    assert limit_of(m.ScheduleExecution.error_stack) == 10000
    assert limit_of(m.HealingAttempt.reasoning) == 2000
    assert limit_of(m.HealingSuggestion.error_pattern) == 1000
    assert limit_of(m.HealingSuggestion.dismiss_reason) == 500
    assert limit_of(m.Job.status) is None


class TestColumnEnforcement:
    """Every write path — ORM flush, Core insert, executemany — goes through the type."""

    async def test_orm_and_core_writes_are_fitted(self, store, org) -> None:
        async with store.unit(org) as uow:
            wf = await uow.reference.add_workflow("wf")
            job = await uow.jobs.create(workflow_id=wf.id)
            await uow.jobs.set_status(job.id, "failed", error_message="E\x00" + "x" * 5000)
            await uow.session.execute(
                sa.insert(m.HealingSuggestion),
                [
                    {"id": uuid.uuid4(), "organization_id": org, "error_pattern": "p" * 3000},
                    {"id": uuid.uuid4(), "organization_id": org, "error_pattern": "short\x00"},
                ],
            )
        async with store.unit(org) as uow:
            got = await uow.jobs.get(job.id)
            patterns = (
                await uow.session.scalars(
                    sa.select(m.HealingSuggestion.error_pattern).where(
                        m.HealingSuggestion.organization_id == org
                    )
                )
            ).all()
        assert got.error_message is not None
        assert len(got.error_message) == 2000
        assert got.error_message.startswith("Ex")
        assert got.error_message.endswith(TRUNCATION_MARKER)
        assert sorted(len(p) for p in patterns) == [5, 1000]
        assert "short" in patterns
