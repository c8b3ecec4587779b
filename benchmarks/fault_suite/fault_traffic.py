"""Sending the fault suite's records: the SDK's producer for generated traffic, a raw one for hostile records.

Every record is kept with the offsets its delivery reports gave, so the
checks can find what became of it by offset; a record whose delivery failed
(a broker cut) is sent again until it is delivered, byte for byte.

With privacy on (``--privacy``) the valid generated events go through the
SDK's ``log_inference`` / ``log_feedback`` of ``PreflogProducer.from_settings``:
validated, ids pseudonymised, personal fields sealed with a data key stored on
the keys topic first. The bytes the SDK sent are kept (:class:`SealingProducer`),
so a resend repeats them instead of sealing again (a second sealing of an
inference would be other bytes: a ConflictingInference, not a redelivery).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Producer
from fault_plan import log

from preflog.producers import PreflogProducer
from preflog.producers.exceptions import BackpressureError
from preflog.producers.generator import GeneratedEvent
from preflog.schemas.codec import SingleObjectCodec
from preflog.settings import Settings, TopicSettings

__all__ = ["CODEC", "SealingProducer", "Sender", "Sent", "generated_value"]

CODEC = SingleObjectCodec()


@dataclass
class Sent:
    """One generated event or hostile record and where the broker put it."""

    label: str
    role: str
    key: bytes | None
    value: bytes | None
    offsets: list[tuple[str, int, int]] = field(default_factory=list)
    failures: int = 0
    sealed_at: float | None = None  # when the SDK's log_* returned (privacy on: sealed); None: encoded here


class SealingProducer(PreflogProducer):
    """The SDK's producer, keeping the bytes each thread's last ``log_*`` call sent (to resend them as they are)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sent = threading.local()

    def send(self, topic: str, key: str | bytes | None, value: bytes) -> Future[Any]:
        self._sent.value = value
        return super().send(topic, key, value)

    def last_value(self) -> bytes:
        """The value the calling thread sent last."""
        value: bytes = self._sent.value
        return value


class Sender:
    """Sends records through the SDK's producer, records every delivery, resends what failed.

    Args:
        config: The suite's client config (the broker's proxy).
        topics: The run's topics.
        settings: With privacy on, the settings the SDK's producer is made from (``from_settings``): it
            seals the generated events given to :meth:`send_event`. None: every record is encoded here.
    """

    def __init__(self, config: dict[str, Any], topics: TopicSettings, settings: Settings | None = None) -> None:
        self.config, self.topics = config, topics
        self.producer: PreflogProducer
        if settings is None:
            self.producer = PreflogProducer({**config, "log_level": 0}, CODEC, topics, max_block_ms=2000)
        else:
            self.producer = SealingProducer.from_settings(settings, max_block_ms=2000)
        self.sdk_retries: list[str] = []  # log_* calls that raised and were made again (a broker cut)
        raw = {**config, "acks": "all", "message.max.bytes": 4_000_000, "linger.ms": 5, "log_level": 0}
        self.raw = Producer(raw)  # hostile records: not idempotent, no validation, big values allowed
        self.sent: list[Sent] = []
        self._lock = threading.Lock()

    def send(self, item: Sent, raw: bool = False) -> None:
        """Records ``item`` and sends it (``raw``: through the plain producer, no validation)."""
        with self._lock:
            self.sent.append(item)
        self._produce(item, raw)

    def send_event(self, label: str, e: GeneratedEvent) -> Sent:
        """Sends a valid generated event through the SDK's ``log_*`` (privacy on: sealed); returns its record.

        A call that raises because the broker is cut (the data key not stored in time, or the local queue
        full) is made again a second later; nothing was sent by it.
        """
        from preflog.privacy.store import KeyStoreError

        assert isinstance(self.producer, SealingProducer) and e.record is not None
        log_event = self.producer.log_inference if e.event_type == "inference" else self.producer.log_feedback
        while True:
            try:
                future = log_event(dict(e.record))
                break
            except (KeyStoreError, BackpressureError) as exc:
                self.sdk_retries.append(f"{label}: {type(exc).__name__}: {str(exc)[:200]}")
                log(f"{label}: the SDK refused ({type(exc).__name__}); again in 1 s")
                time.sleep(1)
        item = Sent(label, e.event_type, e.key.encode(), self.producer.last_value(), sealed_at=time.monotonic())
        with self._lock:
            self.sent.append(item)
        future.add_done_callback(self._delivered(item))
        return item

    @staticmethod
    def _delivered(item: Sent) -> Callable[[Future[Any]], None]:
        """The done-callback of a future of the SDK: appends the record's offset, or counts a failure."""

        def delivered(f: Future[Any]) -> None:
            try:
                where = f.result()
                item.offsets.append((where.topic, where.partition, where.offset))
            except Exception:
                item.failures += 1

        return delivered

    def _produce(self, item: Sent, raw: bool) -> None:
        """Produces ``item`` once; its delivery report appends the offset or counts a failure."""
        topic = getattr(self.topics, item.role)
        if raw:

            def done(err: Any, msg: Any) -> None:
                if err is None:
                    item.offsets.append((msg.topic(), msg.partition(), msg.offset()))
                else:
                    item.failures += 1

            while True:
                try:
                    self.raw.produce(topic, key=item.key, value=item.value, on_delivery=done)
                    self.raw.poll(0)
                    return
                except BufferError:
                    self.raw.poll(0.05)
        future: Future[Any] = self.producer.send(topic, item.key, item.value or b"")
        future.add_done_callback(self._delivered(item))

    def flush_and_retry(self, rounds: int = 5) -> int:
        """Flush both producers; resend records with no successful delivery. Returns how many never made it."""
        for _ in range(rounds):
            self.producer.flush(60)
            self.raw.flush(60)
            missing = [s for s in self.sent if not s.offsets]
            if not missing:
                return 0
            log(f"resending {len(missing)} record(s) whose delivery failed")
            for s in missing:
                self._produce(s, raw=s.label.startswith("bad:"))
        return sum(1 for s in self.sent if not s.offsets)

    def close(self) -> None:
        """Flushes and closes both producers, ignoring errors (the run is over)."""
        with contextlib.suppress(Exception):
            self.producer.close(10)
        with contextlib.suppress(Exception):
            self.raw.flush(10)


def generated_value(e: GeneratedEvent) -> tuple[str, bytes]:
    """The topic role and value bytes of a generated event.

    Invalid events are encoded without the SDK's validation, as
    ``producers/traffic.py`` does; garbage goes to the feedback topic as is.
    """
    if e.event_type == "garbage":
        return "feedback", e.raw or b""
    assert e.record is not None
    record_type = "InferenceEvent" if e.event_type == "inference" else "FeedbackEvent"
    if e.invalid_reason:  # skip the SDK's validation on purpose, as producers/traffic.py does
        return e.event_type, CODEC.encode(record_type, e.record)
    from preflog.schemas.events import feedback_record, inference_record

    record = inference_record(e.record) if e.event_type == "inference" else feedback_record(e.record)
    return e.event_type, CODEC.encode(record_type, record)
