"""How the schema spreads over a Citus cluster (distributed PostgreSQL), table by table.

One PostgreSQL carries the platform for years (see ``docs/scaling.md``); when it stops
being enough, every table already has its place:

- **job-keyed tables are distributed by job**, co-located with ``jobs`` (distribution
  column ``jobs.id``): the job's metadata, RAG context and rule uses, screenshots,
  result pointer, healing attempts and log lines all live on the job's shard, so every
  per-job read and write is a single-shard query and their foreign keys to ``jobs`` stay;
- **the PHI audit chain is distributed by organization** (``organization_id``): one
  organization's chain, its head, checkpoints index and dictionaries on one shard;
- **reference tables** (replicated to every node) hold what rows of both groups point
  at: organizations and their workflows, clients, claims and credentials, the
  content-addressed catalogs and the archive pointer rows of logs and audit;
- **local tables** stay on the coordinator: operational state of one-off jobs (the log
  migration) and transitional tables a contract step drops.

``tests/foundation/test_distribution.py`` checks the models against Citus's rules (every
primary key and unique constraint of a distributed table includes its distribution
column; foreign keys between distributed tables go through it and stay inside one
co-location group; reference tables point only at reference tables; local tables have no
foreign keys to or from the others), so distributing needs no DDL change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["JOBS", "ORGANIZATIONS", "PLACEMENTS", "Distributed", "Local", "Placement", "Reference"]


@dataclass(frozen=True, slots=True)
class Distributed:
    """Sharded by ``column``; tables of one ``colocate_with`` group share shard placement."""

    column: str
    colocate_with: str


@dataclass(frozen=True, slots=True)
class Reference:
    """Replicated to every node (small, or read by rows of every shard)."""


@dataclass(frozen=True, slots=True)
class Local:
    """Kept on the coordinator only (operational or transitional)."""

    why: str


Placement = Distributed | Reference | Local

JOBS: Final = "jobs"
ORGANIZATIONS: Final = "organizations"


def _job(column: str = "job_id") -> Distributed:
    return Distributed(column, JOBS)


def _org() -> Distributed:
    return Distributed("organization_id", ORGANIZATIONS)


PLACEMENTS: Final[dict[str, Placement]] = {
    # reference data the orchestration service owns
    "organizations": Reference(),
    "workflows": Reference(),
    "clients": Reference(),
    "claim_submissions": Reference(),
    "credentials": Reference(),
    "schedule_executions": Reference(),
    "healing_suggestions": Reference(),
    # one job's rows, co-located with the job
    "jobs": _job("id"),
    "healing_attempts": _job(),
    "job_result_archives": _job(),
    "execution_screenshots": _job(),
    "execution_metadata": _job(),
    "execution_progress": _job(),
    "execution_rag_context": _job(),
    "execution_rag_rule_uses": _job(),
    "execution_log_partitioned": _job(),
    # catalogs and pointer rows every shard's rows name
    "rag_rule_catalog": Reference(),
    "rag_payer_catalog": Reference(),
    "rag_modifier_catalog": Reference(),
    "rag_counters": Reference(),
    "execution_log_steps": Reference(),
    "execution_log_retention": Reference(),
    "execution_log_archives": Reference(),
    # per-organization rollups and state
    "execution_daily_summary": _org(),
    "execution_summary_dirty": _org(),
    "execution_metadata_state": Reference(),
    # the PHI audit chain, one organization per shard
    "phi_audit_log": _org(),
    "phi_audit_chain_heads": _org(),
    "phi_audit_checkpoints": _org(),
    "phi_audit_dictionaries": _org(),
    "phi_audit_catalog": Reference(),
    "phi_audit_archives": Reference(),
    # the coordinator's own
    "backfill_completions": Local("one row per finished backfill, read by contract steps"),
    "execution_log_backfill": Local("state of the one-off online log migration"),
    "execution_log_backfill_changes": Local("queue of the one-off online log migration"),
    "execution_log_detached": Local("partitions being archived, by name"),
    "execution_screenshots_legacy": Local("transitional: `execstore backfill results` empties it"),
}
