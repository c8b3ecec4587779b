"""Delivery failures, back-pressure and oversized records reach the caller as the SDK's errors, never blocking long."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from preflog.producers import (
    BackpressureError,
    DeliveryError,
    PreflogProducer,
    ProducerClosedError,
    RecordTooLargeError,
)
from preflog.producers.client import RECORD_OVERHEAD
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import inference_record

from ..conftest import inference

NOWHERE = {"bootstrap.servers": "127.0.0.1:1", "log_level": 0}


def test_undeliverable_record_fails_its_future_and_the_callback() -> None:
    seen = []
    producer = PreflogProducer(
        {**NOWHERE, "message.timeout.ms": 500}, SingleObjectCodec(), on_delivery=lambda where, err: seen.append(err)
    )
    future = producer.log_inference(inference())
    assert isinstance(future.exception(timeout=10), DeliveryError)
    assert isinstance(seen[0], DeliveryError)
    assert producer.close(timeout=1) == 0


def test_full_queue_raises_backpressure_instead_of_blocking() -> None:
    producer = PreflogProducer({**NOWHERE, "queue.buffering.max.messages": 1}, SingleObjectCodec(), max_block_ms=20)
    producer.log_inference(inference())
    started = time.monotonic()
    with pytest.raises(BackpressureError, match="local queue full for 20 ms"):
        producer.log_inference(inference())
    assert time.monotonic() - started < 5  # bounded, not hung; the bound itself is max_block_ms
    assert producer.produced == 1
    assert producer.close(timeout=0.1) == 1


def test_closed_producer_refuses() -> None:
    producer = PreflogProducer(NOWHERE, SingleObjectCodec())
    producer.close(timeout=0.1)
    with pytest.raises(ProducerClosedError):
        producer.log_inference(inference())


def test_size_limit_matches_the_kafka_client_to_the_byte() -> None:
    """The SDK's pre-check counts what librdkafka counts (key + value + 36): the largest record passes."""
    producer = PreflogProducer({**NOWHERE, "message.max.bytes": 3000}, SingleObjectCodec())
    try:
        base = inference(prompt="")
        fixed = len(SingleObjectCodec().encode("InferenceEvent", inference_record(inference(prompt="p" * 2000))))
        room = 3000 - RECORD_OVERHEAD - len(base["request_id"]) - (fixed - 2000)
        producer.log_inference(inference(prompt="p" * room))  # exactly at the limit: librdkafka takes it
        assert producer.produced == 1
        with pytest.raises(RecordTooLargeError, match="3001 bytes, over the limit of 3000 bytes"):
            producer.log_inference(inference(prompt="p" * (room + 1)))
        assert producer.produced == 1
    finally:
        producer.close(timeout=0.1)


def test_raw_send_of_too_many_bytes_is_the_sdk_error_not_a_kafka_exception() -> None:
    producer = PreflogProducer({**NOWHERE, "message.max.bytes": 1000}, SingleObjectCodec())
    try:
        with pytest.raises(RecordTooLargeError, match="1072 bytes, over the limit of 1000 bytes"):
            producer.send("t", "k" * 36, b"x" * 1000)
        assert producer.produced == 0
    finally:
        producer.close(timeout=0.1)


class Refusing:
    """A Kafka client whose produce() refuses every record the way librdkafka does, with a KafkaException."""

    def __init__(self, client: Any, code: int) -> None:
        self.client, self.code = client, code

    def produce(self, *args: Any, **kwargs: Any) -> None:
        raise KafkaException(KafkaError(self.code))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.mark.parametrize(
    ("code", "error", "message"),
    [
        (KafkaError.MSG_SIZE_TOO_LARGE, RecordTooLargeError, "over the limit of 1000000 bytes"),
        (KafkaError._INVALID_ARG, DeliveryError, "the Kafka client refused the record: .*; nothing was sent"),
        (KafkaError._UNKNOWN_TOPIC, DeliveryError, "preflog.inference.v1: the Kafka client refused the record"),
    ],
)
def test_a_kafka_exception_from_produce_is_never_raw(code: int, error: type[Exception], message: str) -> None:
    producer = PreflogProducer(NOWHERE, SingleObjectCodec())
    producer._producer = Refusing(producer._producer, code)  # type: ignore[assignment]
    try:
        with pytest.raises(error, match=message):
            producer.log_inference(inference())
        assert producer.produced == 0
    finally:
        producer._closed.set()


@pytest.mark.parametrize("resumed", [False, True])
def test_feedback_naming_a_missing_candidate_is_refused_when_resumed_and_in_a_dry_run(
    tmp_path: Any, resumed: bool
) -> None:
    """A backfill resumed past its inference, or a dry run, still checks the feedback's candidate indices."""
    from preflog.producers.files import Line
    from preflog.producers.load import produce_lines
    from preflog.producers.progress import Progress, event_id

    from ..conftest import feedback
    from .sdk_helpers import offline_producer

    inf = inference()
    fb = feedback(inf["request_id"], kind="PAIRWISE", pairwise={"chosen": 3, "rejected": 0})
    lines = [Line(1, "inference", inf), Line(2, "feedback", fb)]
    progress = Progress(tmp_path / "events.progress")
    if resumed:
        progress.done.add(str(event_id("inference", inf)))  # an earlier run sent the inference
    producer = offline_producer()
    try:
        report = produce_lines(producer, lines, dry_run=not resumed, progress=progress)
    finally:
        producer.close(timeout=0.1)
        progress.close()
    assert [n for n, _ in report.rejected] == [2], report.rejected
    assert "candidate 3 does not exist" in report.rejected[0][1][0]
