"""execstore: async storage for workflow execution data."""

from execstore.config import Settings, load_settings
from execstore.errors import *  # noqa: F403
from execstore.errors import __all__ as _error_names

__version__ = "0.1.0.dev0"

__all__ = ["Settings", "__version__", "load_settings", *_error_names]
