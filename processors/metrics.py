"""Prometheus metrics of the join worker (served on ``processor.metrics_port``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "DEAD_LETTERS",
    "DUPLICATES",
    "EVENTS_IN",
    "JOIN_LATENCY",
    "PAIRS_OUT",
    "REFETCHED",
    "STATE_KEYS",
    "TURNS_OUT",
    "UNMATCHED",
    "UNPAIRED_OUT",
]

EVENTS_IN = Counter("preflog_processor_events_in", "Records read, by topic", ["topic"])
PAIRS_OUT = Counter("preflog_processor_pairs_out", "Preference pairs emitted")
TURNS_OUT = Counter("preflog_processor_turns_out", "Conversation turns kept for later turns' histories")
UNPAIRED_OUT = Counter("preflog_processor_unpaired_out", "Unpaired signals (ratings, implicit) emitted")
UNMATCHED = Counter("preflog_processor_unmatched", "Unmatched records emitted, by reason", ["reason"])
DEAD_LETTERS = Counter("preflog_processor_dead_letters", "Dead-lettered records, by error class", ["error_class"])
DUPLICATES = Counter("preflog_processor_duplicates_ignored", "Redelivered feedback or identical inference ignored")
JOIN_LATENCY = Histogram(
    "preflog_processor_join_latency_seconds",
    "Event-time distance from inference to the feedback that paired with it",
    buckets=(1, 5, 15, 60, 300, 900, 1800, 3600, 7200),
)
STATE_KEYS = Gauge("preflog_processor_state_keys", "Entries in the join index on this worker (waiting or remembered)")
REFETCHED = Counter(
    "preflog_processor_refetched",
    "Input records the consumer skipped and the worker read again directly, by topic (see processors/faust_compat.py)",
    ["topic"],
)
