"""Synthetic traffic is deterministic, valid where it claims to be, and as messy as asked."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import pytest

from preflog.producers.generator import TrafficProfile, generate
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.exceptions import ValidationError

START = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_same_seed_same_events() -> None:
    assert generate(TrafficProfile(requests=50), START) == generate(TrafficProfile(requests=50), START)
    assert generate(TrafficProfile(requests=50, seed=1), START) != generate(TrafficProfile(requests=50, seed=2), START)


def test_valid_events_validate_and_invalid_ones_do_not() -> None:
    events = generate(TrafficProfile(requests=400, invalid=0.2), START)
    counts = {e.key: len(e.record["candidates"]) for e in events if e.event_type == "inference" and e.record}
    invalid = 0
    for e in events:
        if e.record is None:
            assert e.event_type == "garbage" and e.raw is not None
        elif e.event_type == "inference":
            inference_record(e.record)
        elif e.event_type == "feedback" and not e.invalid_reason:
            feedback_record(e.record, counts.get(e.key))
        elif e.event_type == "feedback":
            invalid += 1
            with pytest.raises(ValidationError, match="does not exist"):
                feedback_record(e.record, counts[e.key])
    assert invalid > 0


def test_shares_are_roughly_as_configured() -> None:
    p = TrafficProfile(
        requests=2000,
        no_feedback=0.25,
        out_of_order=0.0,
        duplicates=0.0,
        invalid=0.0,
        orphan_feedback=0.0,
        extra_feedback=0.0,
    )
    events = generate(p, START)
    kinds = Counter(e.event_type for e in events)
    assert kinds["inference"] == 2000
    assert 0.70 < kinds["feedback"] / 2000 < 0.80
    assert Counter(e.record["kind"] for e in events if e.record and e.event_type == "feedback").keys() == set(p.kinds)


def test_out_of_order_feedback_is_sent_before_its_inference() -> None:
    events = generate(TrafficProfile(requests=300, out_of_order=0.5), START)
    first_seen: dict[str, str] = {}
    for e in events:
        first_seen.setdefault(e.key, e.event_type)
    assert "feedback" in first_seen.values()
    for e in events:  # event time of feedback is still after its inference
        if e.event_type == "feedback" and e.record:
            assert e.record["event_time"] >= START


def test_duplicates_reuse_the_feedback_id() -> None:
    events = generate(TrafficProfile(requests=500, duplicates=0.3), START)
    ids = Counter(e.record["feedback_id"] for e in events if e.event_type == "feedback" and e.record)
    assert max(ids.values()) == 2
