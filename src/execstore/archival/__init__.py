"""Machinery every capability's batch jobs share: setting bad rows aside, reconciling.

- :mod:`execstore.archival.batch`: a batch job (archival, backfill, retention) never lets
  one bad row stop the rest; the row is set aside with its reason and left intact.
- :mod:`execstore.archival.reconcile`: archive pointer rows and blobs kept in step, in
  both directions, for every archive kind a capability describes.
"""

from execstore.archival.batch import SetAside, describe_failure, write_each
from execstore.archival.reconcile import (
    DEFAULT_GRACE,
    ArchiveKind,
    ArchiveTotals,
    Pointer,
    ReconcileReport,
    pointer_totals,
    pointers_in_id_order,
    reconcile,
)

__all__ = [
    "DEFAULT_GRACE",
    "ArchiveKind",
    "ArchiveTotals",
    "Pointer",
    "ReconcileReport",
    "SetAside",
    "describe_failure",
    "pointer_totals",
    "pointers_in_id_order",
    "reconcile",
    "write_each",
]
