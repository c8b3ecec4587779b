"""What the ingestion API does with a request's events: check, validate, send, wait for Kafka.

All or nothing until Kafka: a batch is refused whole (413 too many events, 429 over the key's rate, 503
Kafka stalled) or validated whole by the SDK's own code (:meth:`PreflogProducer.prepare_inference` and
``prepare_feedback``: the same rules and error texts, the same pseudonyms, sealing and redaction); one
invalid event and nothing is sent (422, every invalid event listed by index). Then every record is
produced through the SDK's producer (idempotent, ``acks=all``, keyed by request_id) and the answer waits
for Kafka: 202 once every record is acknowledged, else 503 naming the acknowledged and unacknowledged
ids. A retry of the same ids is harmless (the join and the sink keep each id once).

Backpressure: records sent and not yet acknowledged are counted; a request that would take the count
over ``max_in_flight``, or that comes while the oldest record has waited longer than ``ack_timeout_s``
(Kafka is down or stalled), is answered 503 at once rather than queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

from preflog.privacy.store import KeyStoreError
from preflog.producers.client import Delivered, PreflogProducer, Prepared
from preflog.schemas.exceptions import ValidationError

from .keys import ApiKey
from .limits import RateLimits

__all__ = ["Answer", "Ingest"]

EVENTS = Counter(
    "preflog_api_events_total", "Events the ingestion API handled, by type and outcome", ["type", "outcome"]
)
IN_FLIGHT = Gauge("preflog_api_in_flight", "Events sent to Kafka and not yet acknowledged")
ID_FIELD = {"InferenceEvent": "request_id", "FeedbackEvent": "feedback_id"}


@dataclass
class Answer:
    """An HTTP answer: status, JSON body, headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


log = logging.getLogger(__name__)


def _refused(status: int, error: str, retry_after: int | None = None, **more: Any) -> Answer:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Answer(status, {"error": error, **more}, headers)


class Ingest:
    """The ingestion path of one API process (one producer, one thread that prepares and sends)."""

    def __init__(
        self,
        producer: PreflogProducer,
        limits: RateLimits,
        max_events: int = 1000,
        ack_timeout_s: float = 10.0,
        max_in_flight: int = 20_000,
    ) -> None:
        self.producer = producer
        self.limits = limits
        self.max_events = max_events
        self.ack_timeout_s = ack_timeout_s
        self.max_in_flight = max_in_flight
        # one thread: the SDK's validation, sealing and produce() run in order, off the event loop
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="preflog-api-send")
        self._pending: OrderedDict[int, float] = OrderedDict()  # record number -> when sent (oldest first)
        self._lock = threading.Lock()
        self._numbers = 0
        self._queued = 0  # events admitted and not yet sent: waiting for the worker or on it
        self._working_since: float | None = None  # when the worker's current job started
        sealer = getattr(producer, "sealer", None)
        if sealer is not None:  # privacy on: a new data key waits for the keys topic at most this long
            sealer.put_timeout_s = ack_timeout_s

    def readiness(self) -> tuple[bool, str]:
        """Ready unless Kafka has kept records waiting longer than ``ack_timeout_s`` (new events would get 503)."""
        stalled = self.stalled_s()
        if stalled > self.ack_timeout_s:
            return False, f"Kafka has kept records waiting for {stalled:.0f} s (limit {self.ack_timeout_s:g} s)"
        return True, "accepting events"

    def stalled_s(self) -> float:
        """How long Kafka has kept the worker waiting: the oldest unacknowledged record, or the current job."""
        now = time.monotonic()
        with self._lock:
            oldest = next(iter(self._pending.values()), now)
            working = self._working_since if self._working_since is not None else now
        return now - min(oldest, working)

    def _reserve(self, n: int) -> Answer | None:
        """Count ``n`` events as queued, or the 503 that refuses them (checked and counted on the event loop)."""
        waited = self.stalled_s()
        if waited > self.ack_timeout_s:
            return _refused(
                503,
                f"Kafka has not acknowledged records for {waited:.0f} s; nothing was sent. Retry later "
                "(the same ids are harmless)",
                retry_after=1,
            )
        with self._lock:
            waiting = len(self._pending) + self._queued
            if waiting + n <= self.max_in_flight:
                self._queued += n
                return None
        return _refused(
            503,
            f"Kafka is not keeping up: {waiting} events await acknowledgement (api.max_in_flight "
            f"{self.max_in_flight}); nothing was sent. Retry later",
            retry_after=1,
        )

    async def submit(self, key: ApiKey, record_type: str, events: Sequence[Any]) -> Answer:
        """Answer a request of ``events`` of ``record_type`` sent with ``key``."""
        n = len(events)
        if n > self.max_events:
            EVENTS.labels(record_type, "too_many").inc(n)
            return _refused(413, f"{n} events in one request; at most {self.max_events} (api.max_events): split it")
        admission = self.limits.admit(key.id, n)
        if admission.never:
            EVENTS.labels(record_type, "too_many").inc(n)
            return _refused(
                413, f"{n} events in one request; key {key.id} may send at most {self.limits.burst} at once"
            )
        if not admission.admitted:
            EVENTS.labels(record_type, "rate_limited").inc(n)
            return _refused(
                429,
                f"key {key.id} is over its rate ({self.limits.rate:g} events/s); retry after "
                f"{admission.retry_after_s} s",
                retry_after=admission.retry_after_s,
            )
        busy = self._reserve(n)
        if busy is not None:
            EVENTS.labels(record_type, "unavailable").inc(n)
            self.limits.refund(key.id, n)  # nothing was sent: the retry should not also be a 429
            return busy
        loop = asyncio.get_running_loop()
        answer, futures, ids = await loop.run_in_executor(self._worker, self._job, key, record_type, list(events))
        if answer is not None and "unsent" not in answer.body:
            self.limits.refund(key.id, n)
            return answer  # refused before any send: 422, or the keys topic away
        return await self._acknowledged(record_type, futures, ids, answer)

    def _job(
        self, key: ApiKey, record_type: str, events: list[Any]
    ) -> tuple[Answer | None, list[Future[Delivered]], list[str]]:
        """:meth:`_send` on the worker: its events leave the queued count as they are sent, the rest at its end."""
        with self._lock:
            self._working_since = time.monotonic()
            first = self._numbers
        try:
            return self._send(key, record_type, events)
        finally:
            with self._lock:
                self._working_since = None
                self._queued -= len(events) - (self._numbers - first)

    def _send(
        self, key: ApiKey, record_type: str, events: list[Any]
    ) -> tuple[Answer | None, list[Future[Delivered]], list[str]]:
        """Prepare every event; send them all if every one is valid (runs on the worker thread)."""
        prepared: list[Prepared] = []
        invalid: list[dict[str, Any]] = []
        prepare = self.producer.prepare_inference if record_type == "InferenceEvent" else self.producer.prepare_feedback
        for index, event in enumerate(events):
            try:
                prepared.append(prepare(event, tenant=key.tenant))
            except KeyStoreError as exc:  # privacy on: a new subject's data key could not be stored (Kafka away)
                EVENTS.labels(record_type, "unavailable").inc(len(events))
                return _refused(503, f"{exc}; nothing was sent. Retry later", retry_after=1), [], []
            except ValidationError as exc:
                given = event.get(ID_FIELD[record_type]) if isinstance(event, dict) else None
                invalid.append(
                    {"index": index, "id": given if isinstance(given, str) else None, "errors": exc.problems}
                )
        if invalid:
            EVENTS.labels(record_type, "invalid").inc(len(events))
            error = f"{len(invalid)} of {len(events)} events are invalid; nothing was sent"
            return _refused(422, error, events=invalid), [], []
        futures: list[Future[Delivered]] = []
        ids: list[str] = []
        for p in prepared:
            try:
                future = self.producer.send(p.topic, p.key, p.value)
            except Exception as exc:  # BackpressureError, DeliveryError, or worse: say what went out
                log.warning("sending event %d of %d failed: %s", len(futures), len(prepared), type(exc).__name__)
                EVENTS.labels(record_type, "unavailable").inc(len(prepared) - len(futures))
                unsent = [_id(record_type, q) for q in prepared[len(futures) :]]
                answer = _refused(503, f"{exc}; retry (the same ids are harmless)", retry_after=1, unsent=unsent)
                return answer, futures, ids
            self._track(future)
            futures.append(future)
            ids.append(_id(record_type, p))
            if record_type == "InferenceEvent":
                self.producer.remember_inference(p.record)
        return None, futures, ids

    def _track(self, future: Future[Delivered]) -> None:
        with self._lock:
            self._numbers += 1
            number = self._numbers
            self._pending[number] = time.monotonic()
            self._queued -= 1  # from queued to in flight
            IN_FLIGHT.set(len(self._pending))

        def done(_: Future[Delivered]) -> None:
            with self._lock:
                self._pending.pop(number, None)
                IN_FLIGHT.set(len(self._pending))

        future.add_done_callback(done)

    async def _acknowledged(
        self, record_type: str, futures: list[Future[Delivered]], ids: list[str], refused: Answer | None
    ) -> Answer:
        loop = asyncio.get_running_loop()
        waits = [_awaitable(loop, f) for f in futures]
        if waits:
            await asyncio.wait(waits, timeout=self.ack_timeout_s)
        acked: list[str] = []
        failed: list[str] = []
        late: list[str] = []
        for i, f in zip(ids, futures, strict=True):  # each future read once: the poll thread may settle it meanwhile
            (late if not f.done() else failed if f.exception() is not None else acked).append(i)
        for w in waits:
            w.cancel()  # only the wait: a record not yet acknowledged may still be delivered
        EVENTS.labels(record_type, "accepted").inc(len(acked))
        if refused is None and not failed and not late:
            return Answer(202, {"accepted": len(acked), "ids": acked})
        EVENTS.labels(record_type, "unacknowledged").inc(len(failed) + len(late))
        unacked = failed + late
        if refused is not None:
            refused.body.update(acknowledged=acked, unacknowledged=unacked + refused.body.get("unsent", []))
            refused.body.pop("unsent", None)
            return refused
        why = (
            "Kafka refused them"
            if failed and not late
            else f"Kafka did not acknowledge within {self.ack_timeout_s:g} s"
        )
        return _refused(
            503,
            f"{len(unacked)} of {len(ids)} events not acknowledged ({why}); they may still land. Retry them with "
            "the same ids (harmless)",
            retry_after=1,
            acknowledged=acked,
            unacknowledged=unacked,
        )

    def close(self) -> None:
        self._worker.shutdown(wait=True)


def _awaitable(loop: asyncio.AbstractEventLoop, future: Future[Delivered]) -> asyncio.Future[None]:
    """An asyncio future done when ``future`` is (never cancelling ``future``, which the producer settles)."""
    waiter: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not waiter.done():
            waiter.set_result(None)

    def done(_: Future[Delivered]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
            loop.call_soon_threadsafe(settle)

    future.add_done_callback(done)
    return waiter


def _id(record_type: str, p: Prepared) -> str:
    return str(p.record[ID_FIELD[record_type]])
