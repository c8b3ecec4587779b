"""Running preflog: the embedded one-machine stack and topic management."""

from __future__ import annotations

from preflog.kafka.topics import ensure_topics, partition_counts

from .broker import BrokerError, EmbeddedBroker, free_port
from .probe import BrokerUnreachable, check_broker
from .runfile import StackRecord, find_running

__all__ = [
    "BrokerError",
    "BrokerUnreachable",
    "EmbeddedBroker",
    "StackRecord",
    "check_broker",
    "ensure_topics",
    "find_running",
    "free_port",
    "partition_counts",
]
