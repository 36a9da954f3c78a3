"""Machinery every capability's batch jobs share: setting bad rows aside, reconciling.

- :mod:`execstore.archival.batch`: a batch job (archival, backfill, retention) never lets
  one bad row stop the rest; the row is set aside with its reason and left intact.
- :mod:`execstore.archival.pointers`: archive pointer rows, one shape for every
  capability: row -> ArchiveRef, ref -> row values, the reconciler kind of a table.
- :mod:`execstore.archival.reconcile`: archive pointer rows and blobs kept in step, in
  both directions, for every archive kind.
"""

from execstore.archival.batch import SetAside, describe_failure, write_each
from execstore.archival.pointers import PointerTable, archive_ref, pointer_values
from execstore.archival.reconcile import (
    DEFAULT_GRACE,
    ArchiveKind,
    ArchiveTotals,
    Pointer,
    ReconcileReport,
    reconcile,
)

__all__ = [
    "DEFAULT_GRACE",
    "ArchiveKind",
    "ArchiveTotals",
    "Pointer",
    "PointerTable",
    "ReconcileReport",
    "SetAside",
    "archive_ref",
    "describe_failure",
    "pointer_values",
    "reconcile",
    "write_each",
]
