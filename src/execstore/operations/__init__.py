"""The shared machinery of execstore's batch jobs, and the operator's entry points.

- :mod:`execstore.operations.batch`: one report shape (:class:`BatchReport`), one progress
  callback, rows set aside with their reasons instead of stopping a run;
- :mod:`execstore.operations.backfills`: one backfill protocol and its completion record;
- :mod:`execstore.operations.retention`: one retention API for logs and audit.
"""

from execstore.operations.backfills import (
    BACKFILLS,
    Completion,
    finish_backfill,
    forget_completion,
    read_completion,
    record_completion,
    table_exists,
)
from execstore.operations.batch import (
    BatchReport,
    Progress,
    SetAside,
    describe_failure,
    write_each,
)
from execstore.operations.retention import RetentionKind, apply_retention, retention_kind

__all__ = [
    "BACKFILLS",
    "BatchReport",
    "Completion",
    "Progress",
    "RetentionKind",
    "SetAside",
    "apply_retention",
    "describe_failure",
    "finish_backfill",
    "forget_completion",
    "read_completion",
    "record_completion",
    "retention_kind",
    "table_exists",
    "write_each",
]
