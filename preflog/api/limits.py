"""Per-key rate limits of the ingestion API (a building block of issue 21): token buckets, Retry-After.

Each key has a bucket of ``burst`` events that refills at ``rate`` events per second. A request of ``n``
events takes ``n`` tokens or none: either all its events are admitted, or it is refused with the
seconds after which it would be (the ``Retry-After`` of a ``429``), so nothing is half-accepted. A
request larger than the bucket can never pass and says so (a ``413``-like refusal, not a wait). Time is
``time.monotonic`` unless a clock is given (tests). Thread-safe.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Admission", "RateLimits"]


@dataclass(frozen=True)
class Admission:
    """What a request of ``n`` events got: admitted, or the whole seconds to wait (``Retry-After``)."""

    admitted: bool
    retry_after_s: int = 0
    never: bool = False  # more events than the bucket holds: waiting will not help


class RateLimits:
    """Token buckets, one per key id."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate {rate} and burst {burst}: both must be positive")
        self.rate = float(rate)
        self.burst = int(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, when)
        self._lock = threading.Lock()

    def admit(self, key_id: str, n: int = 1) -> Admission:
        """Take ``n`` tokens of ``key_id``'s bucket if it has them."""
        if n > self.burst:
            return Admission(False, never=True)
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            if tokens >= n:
                self._buckets[key_id] = (tokens - n, now)
                return Admission(True)
            self._buckets[key_id] = (tokens, now)
            return Admission(False, retry_after_s=max(1, math.ceil((n - tokens) / self.rate)))

    def wait_s(self, key_id: str) -> int:
        """Whole seconds until ``key_id`` has a token again (0: it has one now); takes nothing."""
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.rate)
            return 0 if tokens >= 1 else max(1, math.ceil((1 - tokens) / self.rate))

    def refund(self, key_id: str, n: int) -> None:
        """Give back ``n`` tokens taken for a request that sent nothing (invalid, or Kafka away)."""
        with self._lock:
            tokens, then = self._buckets.get(key_id, (float(self.burst), self.clock()))
            self._buckets[key_id] = (min(float(self.burst), tokens + n), then)
