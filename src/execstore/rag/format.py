"""Stored formats of a RAG context: the packed normalized row and the legacy JSON row.

Normalized (``execution_rag_context`` + ``rag_*_catalog``):

- a catalog row per distinct content and organization; its ``digest`` is the first 16
  bytes of sha256 over the JSON array of its fitted fields (rule:
  ``[rule_id, rule_type, condition, action]``, payer: ``[payer_name, payer_id,
  scenario]``, modifier: ``[code, scenario]``), so equal stored text means equal digest;
- a rule's condition and action live in its catalog row's ``body``: ``[condition,
  action]`` as compact JSON, raw-deflated (``b"z"`` + data) when that is smaller, else
  ``b"j"`` + the JSON (:func:`pack_rule_text`);
- ``rule_entry_ids``/``rule_scores``: the rules' catalog ids in retrieval order, and
  their scores in ten-thousandths (null when the retriever gave none);
  ``average_score`` likewise;
- ``execution_rag_rule_uses``: a row per used rule (position, step, time, reason), with
  ``counted`` when its mark added one to the saved ``total_rules_used``.

Legacy (``execution_rag_rules_legacy``, written by the dual-write modes, read by the
backfill): JSON arrays of objects with the orchestration service's camelCase keys,

- payers: ``{"payerName", "payerId", "scenario"}``
- modifiers: ``{"code", "scenario"}``
- rules: ``{"ruleId", "ruleType", "condition", "action", "retrievalScore", "wasUsed",
  "usedAtStepIndex", "usedAtTimestamp", "usageReason"}`` (``usedAtTimestamp``: ISO 8601
  in UTC with milliseconds and ``Z``)

and the summary columns. Reading accepts camelCase or snake_case keys (``usedAt`` too);
writing always produces camelCase.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

from execstore.errors import shown
from execstore.rag.types import RagContext, RagModifier, RagPayer, RagRule
from execstore.repository import as_utc

__all__ = [
    "CatalogKind",
    "context_from_legacy",
    "context_to_legacy",
    "digest",
    "modifier_fields",
    "pack_rule_text",
    "payer_fields",
    "rule_fields",
    "scaled",
    "unpack_rule_text",
    "unscaled",
]

CatalogKind = str
RULE: Final = "rule"
PAYER: Final = "payer"
MODIFIER: Final = "modifier"


def digest(fields: Sequence[str | None]) -> bytes:
    """The 16-byte content key of a catalog entry's fitted ``fields``."""
    raw = json.dumps(list(fields), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).digest()[:16]


def rule_fields(rule: RagRule) -> tuple[str | None, str, str, str]:
    """A rule's catalog fields, in digest order."""
    return (rule.rule_id, rule.rule_type, rule.condition, rule.action)


def payer_fields(payer: RagPayer) -> tuple[str, str, str]:
    """A payer's catalog fields, in digest order."""
    return (payer.payer_name, payer.payer_id, payer.scenario)


def modifier_fields(modifier: RagModifier) -> tuple[str, str]:
    """A modifier's catalog fields, in digest order."""
    return (modifier.code, modifier.scenario)


def pack_rule_text(condition: str, action: str) -> bytes:
    """A rule's ``body``: ``b"z"`` + raw deflate of ``[condition, action]`` as JSON, or
    ``b"j"`` + the JSON itself when deflating does not make it smaller."""
    raw = json.dumps([condition, action], ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = packer.compress(raw) + packer.flush()
    return b"z" + deflated if len(deflated) < len(raw) else b"j" + raw


def unpack_rule_text(body: bytes) -> tuple[str, str]:
    """(condition, action) from a rule's ``body``."""
    kind, data = body[:1], body[1:]
    raw = zlib.decompress(data, -15) if kind == b"z" else data
    condition, action = json.loads(raw.decode("utf-8", "surrogatepass"))
    return condition, action


def scaled(score: float | None) -> int | None:
    """A 0..1 score as ten-thousandths (None stays None)."""
    return None if score is None else round(score * 10_000)


def unscaled(value: int | None) -> float | None:
    """Ten-thousandths back to the score."""
    return None if value is None else value / 10_000


# -- legacy JSON -----------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def context_to_legacy(context: RagContext) -> dict[str, Any]:
    """The legacy row's columns (without ids) holding ``context`` (a stored one: stamped)."""
    assert context.retrieved_at is not None, "save stamps retrieved_at before storing"
    return {
        "payers": [
            {"payerName": p.payer_name, "payerId": p.payer_id, "scenario": p.scenario}
            for p in context.payers
        ],
        "modifiers": [{"code": m.code, "scenario": m.scenario} for m in context.modifiers],
        "rules": [
            {
                "ruleId": r.rule_id,
                "ruleType": r.rule_type,
                "condition": r.condition,
                "action": r.action,
                "retrievalScore": r.retrieval_score,
                "wasUsed": r.was_used,
                "usedAtStepIndex": r.used_at_step_index,
                "usedAtTimestamp": _iso(r.used_at),
                "usageReason": r.usage_reason,
            }
            for r in context.rules
        ],
        "rag_retrieval_time_ms": context.rag_retrieval_time_ms,
        "total_rules_retrieved": context.total_rules_retrieved,
        "total_rules_used": context.total_rules_used,
        "average_retrieval_score": (
            None
            if context.average_retrieval_score is None
            else Decimal(scaled(context.average_retrieval_score) or 0) / 10_000
        ),
        "retrieved_at": as_utc(context.retrieved_at).replace(tzinfo=None),
    }


def _pick(item: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if name in item:
            return item[name]
    return None


def _array(value: Any, what: str) -> list[Mapping[str, Any]]:
    if isinstance(value, str):  # a JSON column read as text
        value = json.loads(value)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ValueError(f"{what} must be a JSON array of objects")
    return value


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ValueError(f"not a number: {shown(value)}")
    return float(value)


def context_from_legacy(row: Mapping[str, Any] | Any) -> RagContext:
    """The context a legacy row (its columns, JSON decoded or not) holds.

    Raises pydantic's ValidationError (a ValueError) when it does not hold a valid one.
    """
    rules = [
        {
            "rule_id": _pick(r, "ruleId", "rule_id"),
            "rule_type": _pick(r, "ruleType", "rule_type"),
            "condition": _pick(r, "condition"),
            "action": _pick(r, "action"),
            "retrieval_score": _number(_pick(r, "retrievalScore", "retrieval_score")),
            "was_used": bool(_pick(r, "wasUsed", "was_used") or False),
            "used_at_step_index": _pick(r, "usedAtStepIndex", "used_at_step_index"),
            "used_at": _pick(r, "usedAtTimestamp", "used_at_timestamp", "usedAt", "used_at"),
            "usage_reason": _pick(r, "usageReason", "usage_reason"),
        }
        for r in _array(row.get("rules"), "rules")
    ]
    payers = [
        {
            "payer_name": _pick(p, "payerName", "payer_name"),
            "payer_id": _pick(p, "payerId", "payer_id"),
            "scenario": _pick(p, "scenario"),
        }
        for p in _array(row.get("payers"), "payers")
    ]
    modifiers = [
        {"code": _pick(m, "code"), "scenario": _pick(m, "scenario")}
        for m in _array(row.get("modifiers"), "modifiers")
    ]
    retrieved_at = row.get("retrieved_at")
    return RagContext.model_validate(
        {
            "retrieved_at": retrieved_at,
            "rag_retrieval_time_ms": row.get("rag_retrieval_time_ms"),
            "total_rules_retrieved": row.get("total_rules_retrieved"),
            "total_rules_used": row.get("total_rules_used") or 0,
            "average_retrieval_score": _number(row.get("average_retrieval_score")),
            "payers": payers,
            "modifiers": modifiers,
            "rules": rules,
        }
    )


def context_from_input(value: Mapping[str, Any]) -> RagContext:
    """A context from a caller's mapping: snake_case fields, or the legacy camelCase shape."""
    legacy_keys = {
        "ragRetrievalTimeMs": "rag_retrieval_time_ms",
        "totalRulesRetrieved": "total_rules_retrieved",
        "totalRulesUsed": "total_rules_used",
        "averageRetrievalScore": "average_retrieval_score",
        "retrievedAt": "retrieved_at",
    }
    row = {legacy_keys.get(k, k): v for k, v in value.items()}
    return context_from_legacy(row)
