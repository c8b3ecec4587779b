"""What the SDK lets through.

Records over a size limit are refused before sending, unusual but valid values pass, and any value in any
field is either sent (and accepted by the processor's decoder) or a ValidationError.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from preflog.producers import PreflogProducer, RecordTooLargeError
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.exceptions import ValidationError
from preflog.settings import Settings

from ..conftest import feedback, inference
from .sdk_helpers import RID, Spy, offline_producer, scores, sent


@pytest.fixture
def offline() -> Iterator[PreflogProducer]:
    producer = offline_producer()
    yield producer
    producer._closed.set()


def test_a_record_over_the_message_size_limit_is_refused_before_sending(offline: PreflogProducer) -> None:
    huge = "x" * 1_100_000
    with pytest.raises(RecordTooLargeError) as info:
        offline.log_inference(inference(candidates=["a", huge]))
    error = info.value
    assert isinstance(error, ValidationError)
    assert error.limit == 1_000_000 and error.size > 1_100_000
    assert "message.max.bytes" in str(error) and "candidates[1].text" in str(error)
    assert offline.produced == 0 and sent(offline) == []


def test_the_size_limit_follows_the_producer_config() -> None:
    producer = offline_producer(**{"message.max.bytes": 2000})
    try:
        producer.log_inference(inference())  # about 400 bytes
        with pytest.raises(
            RecordTooLargeError, match=r"over the limit of 2000 bytes \(the Kafka client.s message.max.bytes"
        ):
            producer.log_inference(inference(prompt="p" * 3000))
        assert producer.produced == 1 and len(sent(producer)) == 1
    finally:
        producer._closed.set()


def test_the_size_limit_includes_the_codec_limit() -> None:
    """The processor's decoder would refuse a body over its limit: the producer refuses it first."""
    producer = offline_producer(codec=SingleObjectCodec(max_record_bytes=1000))
    try:
        with pytest.raises(RecordTooLargeError, match="max_record_bytes"):
            producer.log_inference(inference(prompt="p" * 3000))
        assert sent(producer) == []
    finally:
        producer._closed.set()


def test_valid_edge_values_still_pass(offline: PreflogProducer) -> None:
    """The checks refuse what is wrong, not what is unusual."""
    offline.log_inference(inference(event_time=0))  # the epoch itself
    offline.log_inference(inference(event_time=datetime(2200, 12, 31, 23, 59, tzinfo=timezone.utc)))
    offline.log_inference(inference(request_id=uuid.uuid4(), sampling={"temperature": 0, "seed": -(2**63)}))
    offline.log_inference(inference(candidates=["x"] * 256, prompt="¿Qué? 🦊", metadata={"n": 3, "ok": True}))
    offline.log_feedback(feedback(RID, event_time=datetime.now(timezone(timedelta(hours=5)))))
    offline.log_feedback(feedback(RID, **scores(1e308, -1e307)))
    assert offline.produced == 6 and len(sent(offline)) == 6


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=8)  # hypothesis's text includes lone surrogates
    | st.binary(max_size=8)
    | st.datetimes(timezones=st.none() | st.just(timezone.utc)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
INFERENCE_FIELDS = sorted(set(inference()) | {"prompt_tokens", "unknown"})
FEEDBACK_FIELDS = sorted(set(feedback(RID)) | {"ranking", "scores", "rating", "implicit", "explicit", "metadata"})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["inference", "feedback"]),
    st.data(),
)
def test_any_value_in_any_field_is_sent_or_a_validation_error(event_type: str, data: st.DataObject) -> None:
    """Whatever a caller passes, the SDK raises ValidationError or sends a record the processor decodes and accepts."""
    producer = offline_producer()
    try:
        fields = INFERENCE_FIELDS if event_type == "inference" else FEEDBACK_FIELDS
        event = inference() if event_type == "inference" else feedback(RID)
        for name in data.draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True)):
            event[name] = data.draw(JSONISH)
        log = producer.log_inference if event_type == "inference" else producer.log_feedback
        try:
            log(event)
        except ValidationError:
            assert sent(producer) == []
            return
        (value,) = sent(producer)
        record_type = "InferenceEvent" if event_type == "inference" else "FeedbackEvent"
        decoded = producer.codec.decode(value, record_type, "t")
        check = inference_record if event_type == "inference" else feedback_record
        check(decoded, check_schema=False)  # what the processor does with it
    finally:
        producer._closed.set()


def test_from_settings_refuses_what_the_join_would_dead_letter_as_too_large() -> None:
    kafka = {"bootstrap_servers": "127.0.0.1:1", "extra": {"log_level": "0"}}
    settings = Settings(kafka=kafka, processor={"max_input_bytes": 2048})
    producer = PreflogProducer.from_settings(settings)
    producer._producer = Spy(producer._producer)  # type: ignore[assignment]
    try:
        producer.log_inference(inference())
        with pytest.raises(RecordTooLargeError, match=r"over the limit of 2048 bytes \(max_value_bytes, the processor"):
            producer.log_inference(inference(prompt="p" * 3000))
        assert len(sent(producer)) == 1
    finally:
        producer._closed.set()
