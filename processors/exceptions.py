"""Errors of the join worker."""

from __future__ import annotations

from preflog.errors import ConfigError, PreflogError

__all__ = ["FaustVersionError", "ProcessorError", "StateError", "TopicMismatchError"]


class TopicMismatchError(ConfigError):
    """The input topics are missing or not co-partitioned."""


class FaustVersionError(ConfigError):
    """The installed faust-streaming is not a version whose internals the worker is tested with."""


class ProcessorError(PreflogError):
    """The worker cannot go on (a read it depends on failed)."""


class StateError(ProcessorError):
    """Reading the join state failed: the store, not a record, is at fault (the worker stops)."""
