"""The producer SDK against the real embedded broker."""

from __future__ import annotations

from typing import Any

import pytest

from preflog.producers import PreflogProducer
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.exceptions import ValidationError
from preflog.settings import TopicSettings

from ..conftest import feedback, inference
from ..kafka_helpers import read_topic

pytestmark = pytest.mark.integration


def test_events_come_back_byte_for_byte(kafka_config: dict[str, Any], topics: TopicSettings) -> None:
    codec = SingleObjectCodec()
    events = [inference() for _ in range(30)]
    judgements = [feedback(e["request_id"]) for e in events]
    with PreflogProducer(kafka_config, codec, topics) as log:
        futures = [log.log_inference(e) for e in events] + [log.log_feedback(f) for f in judgements]
    positions = [f.result(timeout=10) for f in futures]

    inf = read_topic(kafka_config, topics.inference, topics.partitions, expect=30)
    fb = read_topic(kafka_config, topics.feedback, topics.partitions, expect=30)
    assert len(inf) == 30 and len(fb) == 30
    sent_inf = {e["request_id"]: codec.encode("InferenceEvent", inference_record(e), topics.inference) for e in events}
    sent_fb = {f["request_id"]: codec.encode("FeedbackEvent", feedback_record(f), topics.feedback) for f in judgements}
    for msg in inf:
        key, value = (msg.key() or b"").decode(), msg.value() or b""
        assert value == sent_inf[key]
        assert codec.decode(value, "InferenceEvent", topics.inference)["request_id"] == key
    for msg in fb:
        assert msg.value() == sent_fb[(msg.key() or b"").decode()]
    # keyed by request_id: an inference and its feedback share a partition number
    inf_partition = {m.key(): m.partition() for m in inf}
    assert all(inf_partition[m.key()] == m.partition() for m in fb)
    # the futures told the truth about where each record went
    assert {(p.topic, p.partition, p.offset) for p in positions} == {
        (m.topic(), m.partition(), m.offset()) for m in inf + fb
    }


def test_invalid_events_never_reach_the_broker(kafka_config: dict[str, Any], topics: TopicSettings) -> None:
    with PreflogProducer(kafka_config, SingleObjectCodec(), topics) as log:
        good = inference()
        log.log_inference(good)
        bad_inferences = [
            inference(candidates=["one"]),
            inference(request_id="nope"),
            inference(candidates=[1, 2]),  # was a TypeError
            inference(sampling="hot"),  # was a ValueError
            inference(prompt="\ud800"),  # was an encoder error naming no field
            inference(candidates=["a", "b" * 1_100_000]),  # was a raw KafkaException (message.max.bytes)
            inference(context={"email": "a@b.c"}),  # was silently dropped
        ]
        for bad in bad_inferences:
            with pytest.raises(ValidationError):
                log.log_inference(bad)
        for bad_feedback in [
            feedback(good["request_id"], pairwise={"chosen": 9, "rejected": 0}),
            feedback(good["request_id"], pairwise="1>0"),  # was an AttributeError
        ]:
            with pytest.raises(ValidationError):
                log.log_feedback(bad_feedback)
        log.log_feedback(feedback(good["request_id"]))
    assert len(read_topic(kafka_config, topics.inference, topics.partitions, expect=1, settle=2)) == 1
    assert len(read_topic(kafka_config, topics.feedback, topics.partitions, expect=1, settle=2)) == 1
