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
    AuditArchives,
    archive_audit,
    check_retention,
    expire_audit_segments,
    six_years_after,
)
from execstore.audit.backfill import backfill_audit, count_remaining
from execstore.audit.checkpoints import checkpoint_organizations
from execstore.audit.dictionaries import train_dictionaries
from execstore.audit.repository import AuditRepository
from execstore.audit.types import AuditReceipt, AuditRecord, PhiAccess
from execstore.audit.verify import OrganizationVerification, Problem, verify_audit

__all__ = [
    "AuditArchives",
    "AuditReceipt",
    "AuditRecord",
    "AuditRepository",
    "OrganizationVerification",
    "PhiAccess",
    "Problem",
    "archive_audit",
    "backfill_audit",
    "check_retention",
    "checkpoint_organizations",
    "count_remaining",
    "expire_audit_segments",
    "six_years_after",
    "train_dictionaries",
    "verify_audit",
]
