"""Exceptions raised by s2scale.

Every error raised on purpose is an :class:`S2ScaleError`; subclasses also inherit the builtin they
refine, so ``except ValueError`` keeps working for callers that do not know s2scale.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ClusterError",
    "ConfigError",
    "GridMismatchError",
    "MissingExtraError",
    "NoScenesFoundError",
    "ReadError",
    "S2ScaleError",
    "StacApiError",
]


class S2ScaleError(Exception):
    """Base class of all s2scale errors."""


class ConfigError(S2ScaleError, ValueError):
    """A configuration value or argument is invalid."""


class NoScenesFoundError(S2ScaleError, LookupError):
    """A search matched no scenes."""


class GridMismatchError(S2ScaleError, ValueError):
    """Arrays, grids or stores do not line up."""


class ReadError(S2ScaleError, OSError):
    """Reading a file, asset or store failed."""


class StacApiError(S2ScaleError, ConnectionError):
    """A STAC API could not be reached or answered with an error."""


class CheckpointError(S2ScaleError, RuntimeError):
    """A model checkpoint is missing, malformed or does not fit."""


class ClusterError(S2ScaleError, RuntimeError):
    """The Dask cluster cannot run the work: no workers, no GPU workers, or no scheduler."""


class MissingExtraError(S2ScaleError, ImportError):
    """An optional dependency is not installed; the message names the ``s2scale[...]`` extra."""
