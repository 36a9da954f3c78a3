"""Execution logs: monthly partitions, COPY-speed appends, archive chunks, retention.

- :mod:`~execstore.logs.repository`: ``uow.logs`` (append, for_job, tail, retention);
- :mod:`~execstore.logs.ingest`: validating a batch, the step catalog, COPY;
- :mod:`~execstore.logs.format`: archive records, chunk keys, job fingerprints;
- :mod:`~execstore.logs.maintenance`: ``execstore maintain``'s partition step;
- :mod:`~execstore.logs.archival`: ``execstore archive logs`` and job deletion;
- :mod:`~execstore.logs.retention`: ``execstore retention run``;
- :mod:`~execstore.logs.backfill`: ``execstore backfill logs`` (the online migration);
- :mod:`~execstore.logs.reconcile`: the logs part of the reconciler.
"""

from execstore.logs.archival import LogArchivalReport, archive_logs
from execstore.logs.deletion import forget_job_logs
from execstore.logs.reconcile import LogArchives
from execstore.logs.repository import LogRepository
from execstore.logs.types import LogEntry, LogRetention, NewLogEntry

__all__ = [
    "LogArchivalReport",
    "LogArchives",
    "LogEntry",
    "LogRepository",
    "LogRetention",
    "NewLogEntry",
    "archive_logs",
    "forget_job_logs",
]
