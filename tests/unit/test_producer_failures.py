"""Delivery failures and back-pressure reach the caller; the caller is never blocked for long."""

from __future__ import annotations

import time

import pytest

from preflog.producers import BackpressureError, DeliveryError, PreflogProducer, ProducerClosedError
from preflog.schemas.codec import SingleObjectCodec

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
