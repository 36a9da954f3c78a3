"""Public types of the RAG capability: a job's retrieval context and what reads return.

Validation is where bad input gets its documented outcome, before anything is written:

- text over its column's limit is fitted (kept prefix + ``…[truncated]``) and NUL
  characters are removed — so the stored text, and its catalog digest, is what the
  model holds; text holding a surrogate code point (no UTF-8 form) is refused;
- scores are numbers in 0..1 (None allowed), rounded to 4 decimals like the legacy
  ``Decimal(5, 4)``; anything else (negative, above 1, NaN) is refused;
- timestamps are kept to the millisecond (the legacy column's precision), in UTC;
- the same rule twice in one context (same rule id, or same content when it has
  none) is refused: usage is recorded per rule and could not say which one was used;
- an empty context (no payers, modifiers or rules) is valid.

Refusals raise pydantic's ``ValidationError`` when a caller builds the model itself and
:class:`~execstore.errors.InvalidRagContext` when a repository is given a mapping.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from execstore.repository import PublicModel, as_utc
from execstore.schema.rag import (
    RULE_ACTION_LIMIT,
    RULE_CONDITION_LIMIT,
    RagModifierEntry,
    RagPayerEntry,
    RagRuleEntry,
)
from execstore.textlimits import fit_text, limit_of, surrogate_at

__all__ = [
    "RagContext",
    "RagModifier",
    "RagPayer",
    "RagRule",
    "RuleUse",
    "ShadowStats",
    "TopRule",
    "fitted",
    "millis",
    "score",
]

REASON_LIMIT = 500
"""Characters kept of a usage reason (the plan's ``usageReason VarChar(500)``)."""


def fitted(limit: int | None) -> Any:
    """A validator fitting text to ``limit`` characters (None stays None)."""

    def fit(value: Any) -> Any:
        if isinstance(value, str):
            at = surrogate_at(value)
            if at is not None:
                raise ValueError(f"a surrogate code point at position {at} is not text")
            return fit_text(value, limit)
        return value

    return AfterValidator(fit)


def _score(value: float | None) -> float | None:
    if value is None:
        return None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"a score must be between 0 and 1, not {value}")
    return round(value * 10_000) / 10_000


def millis(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` in UTC, cut to whole milliseconds (None stays None)."""
    if value is None:
        return None
    value = as_utc(value)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


score = AfterValidator(_score)
Score = Annotated[float | None, score]
Millis = Annotated[dt.datetime, AfterValidator(millis)]
OptionalMillis = Annotated[dt.datetime | None, AfterValidator(millis)]


def _text(column: Any) -> Any:
    return Annotated[str, BeforeValidator(_not_none), fitted(limit_of(column))]


def _not_none(value: Any) -> Any:
    if value is None:
        raise ValueError("required")
    return value


class RagPayer(PublicModel):
    """A payer the retrieval found relevant."""

    payer_name: _text(RagPayerEntry.payer_name)  # type: ignore[valid-type]
    payer_id: _text(RagPayerEntry.payer_id)  # type: ignore[valid-type]
    scenario: _text(RagPayerEntry.scenario)  # type: ignore[valid-type]


class RagModifier(PublicModel):
    """A billing modifier the retrieval found relevant."""

    code: _text(RagModifierEntry.code)  # type: ignore[valid-type]
    scenario: _text(RagModifierEntry.scenario)  # type: ignore[valid-type]


class RagRule(PublicModel):
    """A retrieved rule, its retrieval score and (once marked) how it was used."""

    rule_id: Annotated[str | None, fitted(limit_of(RagRuleEntry.rule_id))] = None
    rule_type: _text(RagRuleEntry.rule_type)  # type: ignore[valid-type]
    condition: Annotated[str, BeforeValidator(_not_none), fitted(RULE_CONDITION_LIMIT)]
    action: Annotated[str, BeforeValidator(_not_none), fitted(RULE_ACTION_LIMIT)]
    retrieval_score: Score = None
    was_used: bool = False
    used_at_step_index: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)
    used_at: OptionalMillis = None
    usage_reason: Annotated[str | None, fitted(REASON_LIMIT)] = None

    @property
    def key(self) -> tuple[Any, ...]:
        """What makes two rules of one context "the same rule"."""
        if self.rule_id is not None:
            return ("id", self.rule_id)
        return ("content", self.rule_type, self.condition, self.action)


class RagContext(PublicModel):
    """One job's RAG retrieval: timing, totals and the payers, modifiers and rules found.

    ``get`` returns exactly what ``save`` stored (order kept). Totals are the caller's
    figures, kept as given; ``mark_rule_used`` adds one to ``total_rules_used`` the
    first time a rule is marked. ``retrieved_at`` left None is stamped by ``save`` with
    its clock's time; a stored context always has it.
    """

    retrieved_at: OptionalMillis = None
    rag_retrieval_time_ms: int = Field(ge=0, le=2**31 - 1)
    total_rules_retrieved: int = Field(ge=0, le=2**31 - 1)
    total_rules_used: int = Field(default=0, ge=0, le=2**31 - 1)
    average_retrieval_score: Score = None
    payers: list[RagPayer] = Field(default_factory=list)
    modifiers: list[RagModifier] = Field(default_factory=list)
    rules: list[RagRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _each_rule_once(self) -> RagContext:
        seen: dict[tuple[Any, ...], int] = {}
        for position, rule in enumerate(self.rules):
            if rule.key in seen:
                name = rule.rule_id or f"at position {seen[rule.key]}"
                raise ValueError(
                    f"rule {name} appears twice (positions {seen[rule.key]} and {position})"
                )
            seen[rule.key] = position
        return self


class RuleUse(PublicModel):
    """One job that retrieved a rule: its score there and whether (and how) it was used."""

    job_id: uuid.UUID
    retrieved_at: Millis
    position: int
    retrieval_score: Score = None
    was_used: bool = False
    used_at_step_index: int | None = None
    used_at: OptionalMillis = None
    usage_reason: str | None = None


class TopRule(PublicModel):
    """A rule and how many jobs in the window retrieved it and used it."""

    rule_id: str | None
    rule_type: str
    retrieved: int
    used: int


class ShadowStats(PublicModel):
    """Shadow-read comparisons of ``dual_write_read_normalized`` so far, across processes."""

    compared: int = 0
    mismatches: int = 0
    failures: int = 0
