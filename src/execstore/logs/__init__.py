"""Execution logs: monthly partitions, COPY-speed appends, archive chunks, retention.

- :mod:`~execstore.logs.repository`: ``uow.logs`` (append, for_job, tail, retention);
- :mod:`~execstore.logs.prepare`: validating a batch (checks, safe fixes, refusals);
- :mod:`~execstore.logs.encoding`: metadata as compact JSON (orjson when installed);
- :mod:`~execstore.logs.steps`: the step catalog;
- :mod:`~execstore.logs.ingest`: COPY into monthly partitions, pipelined for large batches;
- :mod:`~execstore.logs.format`: archive records, chunk keys, job fingerprints;
- :mod:`~execstore.logs.maintenance`: ``execstore maintain``'s partition step;
- :mod:`~execstore.logs.archival`: ``execstore archive logs`` and job deletion;
- :mod:`~execstore.logs.retention`: the logs part of ``execstore retention run``;
- :mod:`~execstore.logs.backfill`: ``execstore backfill logs`` (the online migration);
- :mod:`~execstore.logs.reconcile`: the logs part of the reconciler.
"""

from execstore.logs.archival import archive_logs
from execstore.logs.deletion import forget_job_logs
from execstore.logs.reconcile import LogArchives
from execstore.logs.repository import LogRepository
from execstore.logs.types import LogEntry, LogRetention, NewLogEntry

__all__ = [
    "LogArchives",
    "LogEntry",
    "LogRepository",
    "LogRetention",
    "NewLogEntry",
    "archive_logs",
    "forget_job_logs",
]
