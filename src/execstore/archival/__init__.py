"""Archive pointer rows and blobs, one shape for every capability.

- :mod:`execstore.archival.pointers`: archive pointer rows: row -> ArchiveRef, ref -> row
  values, the reconciler kind of a table.
- :mod:`execstore.archival.reconcile`: archive pointer rows and blobs kept in step, in
  both directions, for every archive kind.

Batch jobs' shared machinery (set-aside rows, reports) lives in :mod:`execstore.operations`.
"""

from execstore.archival.pointers import PointerTable, archive_ref, pointer_values
from execstore.archival.reconcile import (
    DEFAULT_GRACE,
    FOUND,
    ArchiveKind,
    ArchiveTotals,
    Pointer,
    reconcile,
)

__all__ = [
    "DEFAULT_GRACE",
    "FOUND",
    "ArchiveKind",
    "ArchiveTotals",
    "Pointer",
    "PointerTable",
    "archive_ref",
    "pointer_values",
    "reconcile",
]
