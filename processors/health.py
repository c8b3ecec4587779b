"""The join worker's liveness and readiness (``/healthz``, ``/readyz``: :mod:`preflog.deploy.health`).

Both are decided on the worker's event loop: the probe's thread schedules the
check there and waits ``answer_within_s`` for it. A loop that does not answer
in time is stuck (a blocking call, a runaway batch), which is what liveness
exists to catch; state read on the loop needs no locks.

* live: the loop answers, and Faust's Kafka consumer thread and fetcher are
  running (or not started yet). One private Faust attribute is read here,
  ``ThreadDelegateConsumer._thread`` (``tests/unit/test_faust_compat.py``
  checks it exists in the tested Faust).
* ready: not rebalancing, table recovery complete, and the worker owns at
  least one partition of the inference topic. A worker beyond the partition
  count owns none and stays unready: run no more workers than partitions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

from preflog.deploy.health import HEALTH, Health, Verdict

__all__ = ["consumer_problem", "install", "readiness"]


def consumer_problem(app: Any) -> str | None:
    """Why the worker's Kafka consumer is not running; None while it runs or has not started yet."""
    thread = getattr(app.consumer, "_thread", None)
    if thread is None:
        return None
    if thread.crashed:
        return "the Kafka consumer thread crashed"
    worker = getattr(thread, "_thread", None)  # mode's ServiceThread: the OS thread, once started
    if worker is not None and not worker.is_alive():
        return "the Kafka consumer thread has ended"
    if thread.should_stop and not app.should_stop:
        return "the Kafka consumer stopped while the worker runs"
    if app._fetcher.crashed:
        return "Faust's fetcher crashed"
    return None


def readiness(app: Any, inference_topic: str) -> Verdict:
    """Ready when not rebalancing, recovered, and owning partitions of ``inference_topic`` (run on the loop)."""
    recovery = app.tables.recovery
    if app.in_recovery:  # checked first: recovery runs inside a rebalance
        remaining = recovery.active_remaining_total()
        return Verdict(False, "recovering state from the changelog" + (f" ({remaining} to go)" if remaining else ""))
    if app.rebalancing:
        return Verdict(False, "rebalancing")
    if not recovery.completed.is_set():  # Faust sets it after its first assignment's recovery
        return Verdict(False, "waiting for its first partition assignment")
    owned = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == inference_topic)
    if not owned:
        return Verdict(
            False, f"owns no partition of {inference_topic} (joining the group, or more workers than partitions)"
        )
    return Verdict(True, f"owns partitions {owned} of {inference_topic}")


def _on_loop(loop: asyncio.AbstractEventLoop, check: Callable[[], Verdict], within: float) -> Verdict:
    answer: concurrent.futures.Future[Verdict] = concurrent.futures.Future()

    def run() -> None:
        try:
            answer.set_result(check())
        except Exception as exc:
            answer.set_exception(exc)

    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError:
        return Verdict(False, "the event loop is closed")
    try:
        return answer.result(timeout=within)
    except concurrent.futures.TimeoutError:
        return Verdict(False, f"the event loop did not answer within {within:g} s")


def install(
    app: Any, loop: asyncio.AbstractEventLoop, inference_topic: str, answer_within_s: float, health: Health = HEALTH
) -> None:
    """Make the worker's checks this process's health checks."""

    def live() -> Verdict:
        problem = consumer_problem(app)
        return Verdict(problem is None, problem or "event loop and consumer running")

    health.install(
        lambda: _on_loop(loop, live, answer_within_s),
        lambda: _on_loop(loop, lambda: readiness(app, inference_topic), answer_within_s),
    )
