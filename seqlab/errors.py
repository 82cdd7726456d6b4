"""Errors a user can act on.

Every error seqlab raises on purpose derives from :class:`SeqlabError`. The
console scripts print such an error as one line (no traceback) and exit with
status 2; everything else is a bug and keeps its traceback.
"""


class SeqlabError(Exception):
    """Base class: the message names the bad value and the fix."""


class ConfigError(SeqlabError, ValueError):
    """A configuration value is out of range or unknown."""


class DataError(SeqlabError, ValueError):
    """A dataset is missing, empty or too short for the requested windows."""


class DataNotFoundError(DataError, FileNotFoundError):
    """No local copy of a dataset was found and none could be downloaded."""


class TrainingDiverged(SeqlabError, RuntimeError):
    """The loss or a gradient became NaN/Inf; training was stopped."""


class TrackingStoreError(SeqlabError, RuntimeError):
    """The MLflow store cannot be reached or written (server down, read-only
    folder, a SQLite file locked by another process)."""
