"""Running preflog: the embedded one-machine stack and topic management."""

from __future__ import annotations

from .broker import BrokerError, EmbeddedBroker, free_port
from .topics import ensure_topics, partition_counts

__all__ = ["BrokerError", "EmbeddedBroker", "ensure_topics", "free_port", "partition_counts"]
