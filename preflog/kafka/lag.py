"""Consumer lag as a metric: ``preflog_consumer_lag{group, topic, partition}``, measured off the service's loop.

A daemon thread of the processor and of the sink asks the broker, every
``every_s`` seconds, for its group's committed offsets and each partition's
end (:func:`preflog.kafka.offsets.describe`: the end the fetch path reports,
right on the embedded broker too) and sets the gauge to their difference. It
uses its own clients and never touches the service's consumer: measured in
the sink's consume loop, these calls stalled the loop for seconds on the
embedded broker.

A partition the group never committed counts its whole length. A failed
measurement keeps the last figures and counts ``preflog_consumer_lag_errors``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Gauge

from .offsets import describe

__all__ = ["LAG", "measure", "start"]

log = logging.getLogger(__name__)

LAG = Gauge(
    "preflog_consumer_lag",
    "Records in the partition after the group's committed offset",
    ["group", "topic", "partition"],
)
ERRORS = Counter("preflog_consumer_lag_errors", "Lag measurements that failed (the last figures stay)", ["group"])


def measure(config: Mapping[str, Any], group: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """Set the gauge for ``group`` on ``topics``; returns each partition's lag."""
    found = describe(config, group, list(topics))
    lags = {}
    for p in found.partitions:
        lag = p.end if p.lag is None else p.lag  # never committed: the whole partition is to read
        LAG.labels(group, p.topic, str(p.partition)).set(lag)
        lags[(p.topic, p.partition)] = lag
    return lags


def start(config: Mapping[str, Any], group: str, topics: Iterable[str], every_s: float = 30.0) -> threading.Event:
    """Measure every ``every_s`` seconds from a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    names = list(topics)

    def run() -> None:
        while not stop.wait(every_s):
            try:
                measure(config, group, names)
            except Exception as exc:  # the broker away, a timeout: the next round tries again
                ERRORS.labels(group).inc()
                log.debug("measuring the lag of %s failed: %s", group, type(exc).__name__)

    threading.Thread(target=run, name=f"preflog-lag-{group}", daemon=True).start()
    return stop
