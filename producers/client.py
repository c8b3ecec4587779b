"""The producer SDK a serving process embeds.

    from preflog.producers import PreflogProducer

    with PreflogProducer.from_settings() as log:
        log.log_inference(request_id=rid, prompt=p, candidates=[a, b], model="acme-chat")
        ...
        log.log_feedback(feedback_id=fid, request_id=rid, kind="PAIRWISE",
                         pairwise={"chosen": 1, "rejected": 0}, source="END_USER")

Events are validated before anything is sent (a bad event raises
:class:`~preflog.schemas.ValidationError` and sends nothing), keyed by
request_id so both event types land on the same partition, and produced
idempotently with ``acks=all``. Each call returns a future that resolves to
the record's position or fails with :class:`DeliveryError`; a background
thread serves delivery reports. A call never blocks longer than
``max_block_ms``: when the local queue stays full it raises
:class:`BackpressureError` instead.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from preflog.schemas.codec import Codec
from preflog.schemas.events import feedback_record, inference_record
from preflog.settings import Settings, TopicSettings, load_settings

from .exceptions import BackpressureError, DeliveryError, ProducerClosedError

__all__ = ["Delivered", "PreflogProducer"]


@dataclass(frozen=True)
class Delivered:
    """Where the broker stored a record."""

    topic: str
    partition: int
    offset: int


DeliveryCallback = Callable[[Delivered | None, DeliveryError | None], None]


class PreflogProducer:
    """Validates, encodes and sends inference and feedback events."""

    def __init__(
        self,
        kafka_config: Mapping[str, Any],
        codec: Codec,
        topics: TopicSettings | None = None,
        max_block_ms: int = 50,
        remember_requests: int = 100_000,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        config = {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            **kafka_config,
        }
        self._producer = Producer(config)
        self.codec = codec
        self.topics = topics or TopicSettings()
        self.max_block_ms = max_block_ms
        self.on_delivery = on_delivery
        self._candidates: OrderedDict[str, int] = OrderedDict()
        self._remember = remember_requests
        self.produced = 0  # records handed to the Kafka client so far
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="preflog-producer-poll", daemon=True)
        self._poller.start()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **kwargs: Any) -> PreflogProducer:
        """A producer configured from preflog settings (environment by default)."""
        settings = settings or load_settings()
        p = settings.producer
        config = {
            **settings.kafka.client_config(),
            "linger.ms": p.linger_ms,
            "queue.buffering.max.messages": p.queue_max_messages,
            "delivery.timeout.ms": p.delivery_timeout_ms,
        }
        kwargs.setdefault("max_block_ms", p.max_block_ms)
        return cls(config, settings.make_codec(), settings.topics, **kwargs)

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.1)

    def log_inference(self, event: Mapping[str, Any] | None = None, **fields: Any) -> Future[Delivered]:
        """Validate and send an InferenceEvent given as a mapping and/or keyword fields."""
        record = inference_record({**(event or {}), **fields})
        value = self.codec.encode("InferenceEvent", record, self.topics.inference)
        future = self.send(self.topics.inference, record["request_id"], value)
        self._candidates[record["request_id"]] = len(record["candidates"])
        if len(self._candidates) > self._remember:
            self._candidates.popitem(last=False)
        return future

    def log_feedback(self, event: Mapping[str, Any] | None = None, **fields: Any) -> Future[Delivered]:
        """Validate and send a FeedbackEvent.

        When this producer logged the inference, candidate indices are
        also checked against its candidate count.
        """
        data = {**(event or {}), **fields}
        known = self._candidates.get(str(data.get("request_id")))
        record = feedback_record(data, candidate_count=known)
        value = self.codec.encode("FeedbackEvent", record, self.topics.feedback)
        return self.send(self.topics.feedback, record["request_id"], value)

    def send(self, topic: str, key: str | bytes | None, value: bytes) -> Future[Delivered]:
        """Send already-encoded bytes (used by replay and tests); prefer log_*."""
        if self._closed.is_set():
            raise ProducerClosedError("this PreflogProducer is closed; create a new one")
        future: Future[Delivered] = Future()

        def delivered(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                error = DeliveryError(f"{topic}: {err.str()} (retriable={err.retriable()})")
                future.set_exception(error)
                if self.on_delivery:
                    self.on_delivery(None, error)
            else:
                where = Delivered(msg.topic() or topic, msg.partition() or 0, msg.offset() or 0)
                future.set_result(where)
                if self.on_delivery:
                    self.on_delivery(where, None)

        deadline = time.monotonic() + self.max_block_ms / 1000
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=delivered)
                self.produced += 1
                return future
            except BufferError:
                if time.monotonic() >= deadline:
                    raise BackpressureError(
                        f"local queue full for {self.max_block_ms} ms: the broker is slow or unreachable; "
                        "raise producer.queue_max_messages or producer.max_block_ms, or retry later"
                    ) from None
                time.sleep(0.001)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding records; returns how many are still undelivered."""
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 30.0) -> int:
        """Flush and stop; returns how many records were not delivered in time."""
        if self._closed.is_set():
            return 0
        remaining = self.flush(timeout)
        self._closed.set()
        self._poller.join()
        return remaining

    def __enter__(self) -> PreflogProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
