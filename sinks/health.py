"""The audit-log sink's liveness and readiness (``/healthz``, ``/readyz``: :mod:`preflog.deploy.health`).

The consume loop marks each turn (:meth:`SinkHealth.turn`), also while it
waits out a storage outage between writes, and says how many partitions it
owns; it marks the long steps it takes (:meth:`SinkHealth.busy`).

* live: the loop turned within ``liveness_timeout_s``; or it is in a step
  with limits of its own (resuming partitions from the files, which retries
  through a storage outage for minutes; one storage write with its client's
  retries) for at most ``busy_limit_s`` (15 min).
* ready: live, owns at least one partition, its last write did not fail, and
  the storage root answers (checked at most every ``storage_check_s``, from
  the probe's thread, never from the loop). A sink beyond the partition count
  owns nothing and stays unready: run no more sinks than the output topics
  have partitions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from preflog.deploy.health import HEALTH, Health, Verdict

from .storage import Storage

__all__ = ["SinkHealth"]


class SinkHealth:
    """What the sink's loop reports, and the two verdicts made of it."""

    def __init__(
        self,
        storage: Storage,
        stall_s: float,
        storage_check_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        busy_limit_s: float = 900.0,
    ) -> None:
        self.storage = storage
        self.stall_s = stall_s
        self.busy_limit_s = busy_limit_s
        self.busy_with: str | None = None
        self.storage_check_s = storage_check_s
        self.clock = clock
        self.turned_at = clock()
        self.owned = 0
        self.write_problem: str | None = None
        self._lock = threading.Lock()
        self._checked_at = -float("inf")
        self._storage_problem: str | None = None

    def turn(self, owned: int) -> None:
        """The loop turned, owning ``owned`` partitions."""
        self.turned_at = self.clock()
        self.owned = owned
        self.busy_with = None

    def busy(self, what: str) -> None:
        """The loop entered a step that may take long and has limits of its own.

        Resuming partitions from the files, or a storage write with its client's retries: live for up to
        ``busy_limit_s``, until the next turn.
        """
        self.turned_at = self.clock()
        self.busy_with = what

    def live(self) -> Verdict:
        idle = self.clock() - self.turned_at
        if self.busy_with is not None:
            if idle > self.busy_limit_s:
                return Verdict(False, f"{self.busy_with} for {idle:.0f} s (limit {self.busy_limit_s:g} s)")
            return Verdict(True, f"{self.busy_with} for {idle:.0f} s")
        if idle > self.stall_s:
            return Verdict(False, f"the consume loop has not turned for {idle:.0f} s (limit {self.stall_s:g} s)")
        return Verdict(True, "the consume loop is turning")

    def ready(self) -> Verdict:
        if self.owned == 0:
            return Verdict(False, "owns no partition (joining the group, or more sinks than partitions)")
        if self.write_problem is not None:
            return Verdict(False, self.write_problem)
        problem = self._storage()
        if problem is not None:
            return Verdict(False, problem)
        return Verdict(True, f"owns {self.owned} partitions; {self.storage.url} answers")

    def _storage(self) -> str | None:
        with self._lock:
            now = self.clock()
            if now - self._checked_at >= self.storage_check_s:
                self._storage_problem = self.storage.problem()
                self._checked_at = now
            return self._storage_problem

    def install(self, health: Health = HEALTH) -> None:
        health.install(self.live, self.ready)
