"""Errors of the join worker."""

from __future__ import annotations

from preflog.errors import ConfigError, PreflogError

__all__ = ["ProcessorError", "TopicMismatchError"]


class TopicMismatchError(ConfigError):
    """The input topics are missing or not co-partitioned."""


class ProcessorError(PreflogError):
    """The worker cannot go on (a read it depends on failed)."""
