"""Job results: a slim summary in ``jobs.result``, screenshot rows, the full output in a blob.

- :mod:`~execstore.results.repository`: ``uow.results`` (save, summary, detail, screenshots);
- :mod:`~execstore.results.format`: the stored formats (summary keys, screenshot URLs, keys);
- :mod:`~execstore.results.backfill`: moving legacy full results out of ``jobs.result``;
- :mod:`~execstore.results.reconcile`: the results part of the reconciler.
"""

from execstore.results.backfill import backfill_results, count_remaining, forget_result_archive
from execstore.results.format import ScreenshotUrls
from execstore.results.reconcile import ResultArchives
from execstore.results.repository import ResultRepository
from execstore.results.types import ResultDetail, ResultSummary, ScreenshotRecord

__all__ = [
    "ResultArchives",
    "ResultDetail",
    "ResultRepository",
    "ResultSummary",
    "ScreenshotRecord",
    "ScreenshotUrls",
    "backfill_results",
    "count_remaining",
    "forget_result_archive",
]
