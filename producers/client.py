"""The producer SDK a serving process embeds.

    from preflog.producers import PreflogProducer

    with PreflogProducer.from_settings() as log:
        log.log_inference(request_id=rid, prompt=p, candidates=[a, b], model="acme-chat")
        ...
        log.log_feedback(feedback_id=fid, request_id=rid, kind="PAIRWISE",
                         pairwise={"chosen": 1, "rejected": 0}, source="END_USER")

Events are validated before anything is sent (a bad event, whatever the
types passed, raises :class:`~preflog.schemas.ValidationError` naming every
bad field, and sends nothing; one too large to send raises its subclass
:class:`RecordTooLargeError`), keyed by
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
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from preflog.kafka.config import producer_config
from preflog.privacy.fields import TENANT
from preflog.privacy.sealer import Privacy, Sealer, privacy_fields, stamp
from preflog.schemas.codec import Codec
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.exceptions import ValidationError
from preflog.settings import Settings, TopicSettings, load_settings

from .exceptions import BackpressureError, DeliveryError, ProducerClosedError, RecordTooLargeError

__all__ = [
    "DEFAULT_MESSAGE_MAX_BYTES",
    "LATEST_EVENT_TIME",
    "RECORD_OVERHEAD",
    "Delivered",
    "PreflogProducer",
    "Prepared",
]


@dataclass(frozen=True)
class Prepared:
    """An event ready to send: its topic, key (request_id), encoded value and the validated record."""

    topic: str
    key: str
    value: bytes
    record: dict[str, Any]


@dataclass(frozen=True)
class Delivered:
    """Where the broker stored a record."""

    topic: str
    partition: int
    offset: int


DeliveryCallback = Callable[[Delivered | None, DeliveryError | None], None]
#: the SDK refuses event times from this one on: a time centuries ahead is a bug in the caller
LATEST_EVENT_TIME = datetime(2201, 1, 1, tzinfo=timezone.utc)
#: librdkafka's default ``message.max.bytes``
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
#: what librdkafka adds to key + value before comparing with ``message.max.bytes`` (v2 record overhead)
RECORD_OVERHEAD = 36


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
        max_value_bytes: int | None = None,
        sealer: Sealer | None = None,
        redactors: Sequence[Any] = (),
        watch: Any = None,
    ) -> None:
        """A producer on ``kafka_config`` (librdkafka keys) writing with ``codec``.

        ``max_value_bytes`` refuses encoded events larger than this (RecordTooLargeError) on top of
        ``message.max.bytes``; :meth:`from_settings` sets it to ``processor.max_input_bytes``, past
        which the join would dead-letter the event (InputTooLarge).

        ``sealer`` (privacy on) pseudonymises ids and seals personal fields; ``redactors``
        (:func:`preflog.producers.redact.redactors`) redact texts first; ``watch`` (a
        :class:`preflog.privacy.store.KeyWatch`) tells the sealer which keys were erased.
        """
        config = producer_config(kafka_config)
        self._producer = Producer(config)
        self.message_max_bytes = int(config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
        self.max_value_bytes = max_value_bytes
        self.codec = codec
        self.topics = topics or TopicSettings()
        self.max_block_ms = max_block_ms
        self.on_delivery = on_delivery
        self.sealer = sealer
        self.redactors = tuple(redactors)
        self._watch = watch
        self._candidates: OrderedDict[str, tuple[int, str | None]] = OrderedDict()  # request_id -> (count, tenant)
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
        kwargs.setdefault("max_value_bytes", settings.processor.max_input_bytes)
        if settings.privacy.redact and "redactors" not in kwargs:
            from .redact import redactors

            kwargs["redactors"] = redactors(settings.privacy.redact)
        if settings.privacy.enabled and "sealer" not in kwargs:
            from preflog.privacy.keys import load_masters, load_secret
            from preflog.privacy.store import open_store, open_watch

            kwargs["sealer"] = Sealer(load_secret(settings), load_masters(settings)[0], open_store(settings))
            kwargs.setdefault("watch", open_watch(settings))
        return cls(config, settings.make_codec(), settings.topics, **kwargs)

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.1)
            if self._watch is not None and self.sealer is not None:
                erased = self._watch.poll()
                if erased:
                    self.sealer.forget(erased)

    def _protect(self, record_type: str, record: dict[str, Any], p: Privacy) -> dict[str, Any]:
        """``record`` redacted, then sealed (privacy on) or only stamped with its consent and retention."""
        if self.redactors:
            from .redact import count, redact_record

            record, counts = redact_record(record_type, record, self.redactors)
            count(counts)
        if self.sealer is None:
            if p.subject is not None:
                raise ValidationError(
                    record_type, ["subject: needs privacy on (PREFLOG_PRIVACY__ENABLED=true and its keys)"]
                )
            return stamp(record, p)
        if record_type == "InferenceEvent":
            return self.sealer.inference(record, p)
        return self.sealer.feedback(record, p)

    def log_inference(self, event: Mapping[str, Any] | None = None, **fields: Any) -> Future[Delivered]:
        """Validate and send an InferenceEvent given as a mapping and/or keyword fields.

        Raises:
            ValidationError: the event is invalid (nothing was sent).
            RecordTooLargeError: it is valid but too large to send (nothing was sent).
            BackpressureError: the local queue stayed full for ``max_block_ms``.
            DeliveryError: the Kafka client refused the record outright.
        """
        prepared = self.prepare_inference(_fields("InferenceEvent", event, fields))
        future = self.send(prepared.topic, prepared.key, prepared.value)
        self.remember_inference(prepared.record)
        return future

    def prepare_inference(self, event: Any, tenant: str | None = None) -> Prepared:
        """An InferenceEvent validated, protected and encoded, not sent (raises as :meth:`log_inference`).

        ``tenant`` (the ingestion API's key) is stamped as ``context.tenant``; an event naming another
        tenant is refused.
        """
        data = _fields("InferenceEvent", event, {})
        if tenant is not None:
            data["context"] = _with_tenant(data.get("context"), tenant)
        about = privacy_fields("InferenceEvent", data)
        record = inference_record(data)
        _check_event_time("InferenceEvent", record)
        value = self._encode("InferenceEvent", self._protect("InferenceEvent", record, about), self.topics.inference)
        return Prepared(self.topics.inference, record["request_id"], value, record)

    def remember_inference(self, record: Mapping[str, Any]) -> None:
        """Remember an inference's candidate count without sending it, to check the feedback that follows.

        For an inference sent earlier (a resumed backfill) or only validated (a dry run).

        Args:
            record: the inference as :func:`~preflog.schemas.events.inference_record` returns it.
        """
        tenant = (record.get("context") or {}).get("tenant")
        self._candidates[record["request_id"]] = (len(record["candidates"]), tenant)
        if len(self._candidates) > self._remember:
            self._candidates.popitem(last=False)

    def candidate_count(self, request_id: str) -> int | None:
        """The candidate count of an inference this producer sent or remembered, or None."""
        known = self._candidates.get(request_id)
        return known[0] if known is not None else None

    def _count_for(self, request_id: Any, tenant: str | None) -> int | None:
        """The remembered candidate count, only for the same tenant when one is given (no tenant learns another's)."""
        known = self._candidates.get(request_id) if isinstance(request_id, str) else None
        if known is None or (tenant is not None and known[1] != tenant):
            return None
        return known[0]

    def log_feedback(self, event: Mapping[str, Any] | None = None, **fields: Any) -> Future[Delivered]:
        """Validate and send a FeedbackEvent (raises as :meth:`log_inference` does).

        When this producer logged the inference, candidate indices are
        also checked against its candidate count.
        """
        prepared = self.prepare_feedback(_fields("FeedbackEvent", event, fields))
        return self.send(prepared.topic, prepared.key, prepared.value)

    def prepare_feedback(self, event: Any, tenant: str | None = None) -> Prepared:
        """A FeedbackEvent validated, protected and encoded, not sent (raises as :meth:`log_inference`).

        ``tenant`` (the ingestion API's key) is stamped in the reserved metadata key ``preflog.tenant``,
        never sealed: the join refuses the feedback when its inference has another tenant.
        """
        data = _fields("FeedbackEvent", event, {})
        about = privacy_fields("FeedbackEvent", data)
        request_id = data.get("request_id")
        known = self._count_for(request_id, tenant)
        record = feedback_record(data, candidate_count=known)
        if known is None:  # the caller may have written the id in another form (upper case, a UUID object)
            known = self._count_for(record["request_id"], tenant)
            if known is not None:
                record = feedback_record(data, candidate_count=known)
        _check_event_time("FeedbackEvent", record)
        protected = self._protect("FeedbackEvent", record, about)
        if tenant is not None:
            protected = {**protected, "metadata": {**protected["metadata"], TENANT: tenant}}
        value = self._encode("FeedbackEvent", protected, self.topics.feedback)
        return Prepared(self.topics.feedback, record["request_id"], value, record)

    def _encode(self, record_type: str, record: Mapping[str, Any], topic: str) -> bytes:
        """The record's bytes; RecordTooLargeError when they cannot be sent or would not be decoded."""
        value = self.codec.encode(record_type, record, topic)
        size = len(value) + len(record["request_id"]) + RECORD_OVERHEAD
        if size > self.message_max_bytes:
            setting = f"the Kafka client's message.max.bytes, counting the key and {RECORD_OVERHEAD} bytes of overhead"
            raise RecordTooLargeError(record_type, size, self.message_max_bytes, setting, _largest_texts(record))
        if self.max_value_bytes is not None and len(value) > self.max_value_bytes:
            setting = "max_value_bytes, the processor's max_input_bytes: the join would dead-letter it"
            raise RecordTooLargeError(record_type, len(value), self.max_value_bytes, setting, _largest_texts(record))
        codec_limit = getattr(self.codec, "max_record_bytes", None)
        body = len(value) - int(getattr(self.codec, "header_size", 0))
        if codec_limit is not None and body > codec_limit:
            setting = "the codec's max_record_bytes: the processor would refuse to decode it"
            raise RecordTooLargeError(record_type, body, codec_limit, setting, _largest_texts(record))
        return value

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
            except KafkaException as exc:
                raise self._refused(exc, topic, key, value) from None
            except BufferError:
                if time.monotonic() >= deadline:
                    raise BackpressureError(
                        f"local queue full for {self.max_block_ms} ms: the broker is slow or unreachable; "
                        "raise producer.queue_max_messages or producer.max_block_ms, or retry later"
                    ) from None
                time.sleep(0.001)

    def _refused(self, exc: KafkaException, topic: str, key: str | bytes | None, value: bytes) -> Exception:
        """The SDK's error for a record the Kafka client refused in produce() (never the raw KafkaException)."""
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            size = len(value) + len(key or b"") + RECORD_OVERHEAD
            return RecordTooLargeError(f"record for {topic}", size, self.message_max_bytes, "message.max.bytes")
        reason = error.str() if error is not None else str(exc)
        return DeliveryError(f"{topic}: the Kafka client refused the record: {reason}; nothing was sent")

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
        if self._watch is not None:
            self._watch.close()
        if self.sealer is not None:
            self.sealer.store.close()
        return remaining

    def __enter__(self) -> PreflogProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fields(record_type: str, event: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
    if event is None:
        return dict(fields)
    if not isinstance(event, Mapping):
        raise ValidationError(record_type, [f"event: expected a mapping of fields, got {type(event).__name__}"])
    return {**event, **fields}


def _with_tenant(context: Any, tenant: str) -> Any:
    """``context`` with ``tenant`` stamped; ValidationError when it names another tenant."""
    if context is None:
        return {"tenant": tenant}
    if not isinstance(context, Mapping):
        return context  # the validation names what is wrong with it
    given = context.get("tenant")
    if given is not None and given != tenant:
        raise ValidationError(
            "InferenceEvent",
            [f"context.tenant: this key sends for tenant {tenant!r}, not {given!r}; leave it out, the API stamps it"],
        )
    return {**context, "tenant": tenant}


def _check_event_time(record_type: str, record: Mapping[str, Any]) -> None:
    if record["event_time"] >= LATEST_EVENT_TIME:
        when = record["event_time"].isoformat()
        raise ValidationError(record_type, [f"event_time: {when} is after 2200; give the time the event happened"])


def _largest_texts(record: Mapping[str, Any], top: int = 3) -> str:
    """The longest text values of ``record`` with their paths, for a size error."""
    sizes: list[tuple[int, str]] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, str):
            sizes.append((len(value.encode(errors="replace")), path))
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")

    walk(record, "")
    return ", ".join(f"{path} ({n} bytes)" for n, path in sorted(sizes, reverse=True)[:top])
