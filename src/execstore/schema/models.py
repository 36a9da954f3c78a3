"""The optimized schema (migration head): every table, from the per-capability modules.

Storage principles (DESIGN.md): native uuid ids, small-integer enums, ``timestamptz``,
names joined rather than copied, repeated RAG text content-addressed into catalogs,
bulk moved to blobs behind small pointer rows, and every VARCHAR enforced on write by
:class:`~execstore.schema.types.BoundedString`.

Columns of the tables execstore creates are declared widest-alignment first (8-byte,
then 16-byte uuids, then 2-byte smallints, then variable-length) so PostgreSQL wastes
no padding on hot rows. The reference tables and ``jobs`` are the legacy tables
converted in place and keep the legacy order (``execstore.schema.reference``). The
models declare columns in the order the migrated database has them: the migration
tests compare the two column by column, order included.

Transitional tables (``*_legacy`` and the unpartitioned ``execution_log``) hold the
pre-optimization rows until the capability backfills drain them; a contract revision
drops them. They are Core tables: nothing new is written to them except in the RAG
dual-write modes. A transitional table whose contract revision already exists lives in
its own MetaData (``execution_metadata_legacy``: ``schema.metadata.transitional_metadata``),
because head no longer has it.
"""

from __future__ import annotations

from execstore.schema.audit import (
    PhiAuditArchive,
    PhiAuditCatalogEntry,
    PhiAuditChainHead,
    PhiAuditCheckpoint,
    PhiAuditDictionary,
    PhiAuditLog,
    phi_audit_log_legacy,
)
from execstore.schema.base import Base
from execstore.schema.logs import (
    ExecutionLogArchive,
    ExecutionLogBackfill,
    ExecutionLogBackfillChange,
    ExecutionLogDetached,
    ExecutionLogEntry,
    ExecutionLogRetention,
    ExecutionLogStep,
    execution_log_legacy,
)
from execstore.schema.metadata import (
    ExecutionDailySummary,
    ExecutionMetadata,
    ExecutionMetadataState,
    ExecutionProgress,
    ExecutionSummaryDirty,
    execution_metadata_legacy,
)
from execstore.schema.operations import BackfillCompletion
from execstore.schema.rag import (
    ExecutionRagContext,
    RagCounter,
    RagModifierEntry,
    RagPayerEntry,
    RagRuleEntry,
    execution_rag_rule_uses,
    execution_rag_rules_legacy,
)
from execstore.schema.reference import (
    ClaimSubmission,
    Client,
    Credential,
    HealingAttempt,
    HealingSuggestion,
    Job,
    Organization,
    ScheduleExecution,
    Workflow,
)
from execstore.schema.results import (
    ExecutionScreenshot,
    JobResultArchive,
    execution_screenshots_legacy,
)

__all__ = [
    "BackfillCompletion",
    "Base",
    "ClaimSubmission",
    "Client",
    "Credential",
    "ExecutionDailySummary",
    "ExecutionLogArchive",
    "ExecutionLogBackfill",
    "ExecutionLogBackfillChange",
    "ExecutionLogDetached",
    "ExecutionLogEntry",
    "ExecutionLogRetention",
    "ExecutionLogStep",
    "ExecutionMetadata",
    "ExecutionMetadataState",
    "ExecutionProgress",
    "ExecutionRagContext",
    "ExecutionScreenshot",
    "ExecutionSummaryDirty",
    "HealingAttempt",
    "HealingSuggestion",
    "Job",
    "JobResultArchive",
    "Organization",
    "PhiAuditArchive",
    "PhiAuditCatalogEntry",
    "PhiAuditChainHead",
    "PhiAuditCheckpoint",
    "PhiAuditDictionary",
    "PhiAuditLog",
    "RagCounter",
    "RagModifierEntry",
    "RagPayerEntry",
    "RagRuleEntry",
    "ScheduleExecution",
    "Workflow",
    "execution_log_legacy",
    "execution_metadata_legacy",
    "execution_rag_rule_uses",
    "execution_rag_rules_legacy",
    "execution_screenshots_legacy",
    "phi_audit_log_legacy",
]
