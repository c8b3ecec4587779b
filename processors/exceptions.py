"""Errors of the join worker."""

from __future__ import annotations

from preflog.errors import ConfigError

__all__ = ["TopicMismatchError"]


class TopicMismatchError(ConfigError):
    """The input topics are missing or not co-partitioned."""
