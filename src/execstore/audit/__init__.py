"""The PHI audit log: compact append-only records, a hash chain anchored in blob storage.

- :mod:`~execstore.audit.repository`: ``uow.audit`` (record, record_many, query, export);
- :mod:`~execstore.audit.format`: the canonical record line and the chain;
- :mod:`~execstore.audit.codec`: details compression with per-organization dictionaries;
- :mod:`~execstore.audit.writer`: appending under the organization's chain-head lock;
- :mod:`~execstore.audit.checkpoints`: chain heads written to write-once blobs;
- :mod:`~execstore.audit.verify`: ``execstore audit verify``;
- :mod:`~execstore.audit.archival`: segments to blobs, retention with the six-year floor,
  the audit part of the reconciler;
- :mod:`~execstore.audit.backfill`: legacy ``phi_audit_log`` rows into the chain;
- :mod:`~execstore.audit.dictionaries`: training compression dictionaries.
"""

from execstore.audit.archival import (
    AuditArchivalReport,
    AuditArchives,
    AuditRetentionReport,
    apply_audit_retention,
    archive_audit,
    check_retention,
    six_years_after,
)
from execstore.audit.backfill import AuditBackfillReport, backfill_audit, count_legacy_audit
from execstore.audit.checkpoints import CheckpointReport, checkpoint_organizations
from execstore.audit.dictionaries import DictionaryReport, train_dictionaries
from execstore.audit.repository import AuditRepository
from execstore.audit.types import AuditReceipt, AuditRecord, PhiAccess
from execstore.audit.verify import OrganizationVerification, Problem, VerifyReport, verify_audit

__all__ = [
    "AuditArchivalReport",
    "AuditArchives",
    "AuditBackfillReport",
    "AuditReceipt",
    "AuditRecord",
    "AuditRepository",
    "AuditRetentionReport",
    "CheckpointReport",
    "DictionaryReport",
    "OrganizationVerification",
    "PhiAccess",
    "Problem",
    "VerifyReport",
    "apply_audit_retention",
    "archive_audit",
    "backfill_audit",
    "check_retention",
    "checkpoint_organizations",
    "count_legacy_audit",
    "six_years_after",
    "train_dictionaries",
    "verify_audit",
]
