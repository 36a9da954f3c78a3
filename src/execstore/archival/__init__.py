"""Archive pointer rows and blobs kept in step, in both directions, for every archive kind
a capability describes (:mod:`execstore.archival.reconcile`). Batch jobs' shared
machinery lives in :mod:`execstore.operations`.
"""

from execstore.archival.reconcile import (
    DEFAULT_GRACE,
    FOUND,
    ArchiveKind,
    ArchiveTotals,
    Pointer,
    pointer_totals,
    pointers_in_id_order,
    reconcile,
)

__all__ = [
    "DEFAULT_GRACE",
    "FOUND",
    "ArchiveKind",
    "ArchiveTotals",
    "Pointer",
    "pointer_totals",
    "pointers_in_id_order",
    "reconcile",
]
