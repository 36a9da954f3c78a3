"""RAG context: per-job retrieval records deduplicated into per-organization catalogs.

- :mod:`~execstore.rag.types`: the public models (and what bad input becomes);
- :mod:`~execstore.rag.repository`: ``uow.rag`` behind the ``EXECSTORE_RAG_MODE`` switch;
- :mod:`~execstore.rag.format`: the stored formats, normalized and legacy JSON;
- :mod:`~execstore.rag.normalized` / :mod:`~execstore.rag.legacy_store`: each side's SQL;
- :mod:`~execstore.rag.counters`: the shadow-read counters;
- :mod:`~execstore.rag.backfill`: legacy JSON rows -> normalized, verified.
"""

from execstore.rag.backfill import backfill_rag, count_remaining
from execstore.rag.counters import read_stats
from execstore.rag.repository import RagRepository, as_context
from execstore.rag.types import (
    RagContext,
    RagModifier,
    RagPayer,
    RagRule,
    RuleUse,
    ShadowStats,
    TopRule,
)

__all__ = [
    "RagContext",
    "RagModifier",
    "RagPayer",
    "RagRepository",
    "RagRule",
    "RuleUse",
    "ShadowStats",
    "TopRule",
    "as_context",
    "backfill_rag",
    "count_remaining",
    "read_stats",
]
