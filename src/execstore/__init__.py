"""execstore: async storage for workflow execution data.

    from execstore import ExecStore, load_settings

    async with ExecStore.open(load_settings()) as store:
        async with store.unit(organization_id) as uow:
            ...

The public types each capability returns are importable from here too.
"""

from execstore.clock import SYSTEM_CLOCK, Clock, ManualClock, SystemClock
from execstore.config import Settings, load_settings
from execstore.errors import *  # noqa: F403
from execstore.errors import __all__ as _error_names
from execstore.jobs import (
    ClaimSubmissionRecord,
    ClientRecord,
    CredentialRecord,
    JobRecord,
    OrganizationRecord,
    WorkflowRecord,
)
from execstore.metadata import (
    ExecutionStatus,
    ExecutionSummary,
    ExecutionView,
)
from execstore.pages import DEFAULT_LIMIT, MAX_LIMIT, Page
from execstore.results import ResultDetail, ResultSummary, ScreenshotRecord
from execstore.store import ExecStore, UnitOfWork

__version__ = "0.1.0.dev0"

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "SYSTEM_CLOCK",
    "ClaimSubmissionRecord",
    "ClientRecord",
    "Clock",
    "CredentialRecord",
    "ExecStore",
    "ExecutionStatus",
    "ExecutionSummary",
    "ExecutionView",
    "JobRecord",
    "ManualClock",
    "OrganizationRecord",
    "Page",
    "ResultDetail",
    "ResultSummary",
    "ScreenshotRecord",
    "Settings",
    "SystemClock",
    "UnitOfWork",
    "WorkflowRecord",
    "__version__",
    "load_settings",
    *_error_names,
]
