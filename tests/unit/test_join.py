"""The join state machine, driven directly (no Kafka): orders, windows, expiry, idempotence, bad references."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflog.processors.pairs import pair_id
from preflog.schemas.events import feedback_record, inference_record

from ..conftest import T0, feedback, inference
from .join_harness import FB, INF, MIN, Harness, at, roles


def test_inference_then_feedback_makes_a_pair_with_provenance() -> None:
    h = Harness()
    inf = inference()
    assert h.send(INF, inf) == []
    (out,) = h.send(FB, feedback(inf["request_id"], event_time=at(3)))
    pair = out.record
    assert out.role == "pairs" and out.key == inf["request_id"].encode()
    assert (pair["chosen"], pair["rejected"], pair["chosen_index"], pair["rejected_index"]) == ("7", "9", 0, 1)
    assert pair["join_latency_ms"] == 3 * MIN
    assert pair["model"]["checkpoint_hash"] == "sha256:abc" and pair["sampling"]["top_k"] == 40
    assert pair["inference_offset"] == {"topic": INF, "partition": 0, "offset": 0}
    assert pair["feedback_offset"] == {"topic": FB, "partition": 0, "offset": 0}
    assert h.codec.decode(h.codec.encode("PreferencePair", pair), "PreferencePair")["pair_id"] == pair["pair_id"]


def test_feedback_first_waits_for_its_inference() -> None:
    h = Harness()
    inf = inference()
    assert h.send(FB, feedback(inf["request_id"], event_time=at(1))) == []
    assert roles(h.send(INF, inf)) == ["pairs"]


def test_many_feedback_events_each_yield_pairs() -> None:
    h = Harness()
    inf = inference()
    h.send(INF, inf)
    ranking = [{"index": 0, "rank": 1}, {"index": 1, "rank": 3}, {"index": 2, "rank": 2}]
    assert roles(h.send(FB, feedback(inf["request_id"], event_time=at(1)))) == ["pairs"]
    assert (
        roles(h.send(FB, feedback(inf["request_id"], event_time=at(2), kind="RANKING", pairwise=None, ranking=ranking)))
        == ["pairs"] * 3
    )
    rating = {"index": 2, "label": False, "scale": "thumbs"}
    (signal,) = h.send(FB, feedback(inf["request_id"], event_time=at(3), kind="RATING", pairwise=None, rating=rating))
    assert signal.role == "unpaired" and signal.record["completion"] == "11" and signal.record["label"] is False


def test_duplicate_feedback_id_yields_pairs_once() -> None:
    h = Harness()
    inf = inference()
    fb = feedback(inf["request_id"], event_time=at(1))
    h.send(INF, inf)
    assert roles(h.send(FB, fb)) == ["pairs"]
    assert h.send(FB, fb) == []
    assert h.joiner.duplicates == 1


def test_duplicate_feedback_while_waiting_is_kept_once() -> None:
    h = Harness()
    inf = inference()
    fb = feedback(inf["request_id"], event_time=at(1))
    h.send(FB, fb)
    h.send(FB, fb)
    assert roles(h.send(INF, inf)) == ["pairs"]


def test_identical_duplicate_inference_is_ignored_conflicting_one_dead_lettered() -> None:
    h = Harness()
    inf = inference()
    h.send(INF, inf)
    assert h.send(INF, inf) == []
    (out,) = h.send(INF, {**inf, "prompt": "something else"})
    assert out.role == "dead_letter" and out.record["error_class"] == "ConflictingInference"
    assert "already used by an inference with different content" in out.record["reason"]


def test_a_judged_inference_read_again_after_its_expiry_is_a_duplicate_another_one_a_conflict() -> None:
    """After expiry a judged inference leaves a marker with its digest: a re-read (kill -9) is no conflict."""
    h = Harness()
    inf = inference()
    h.send(INF, inf)
    rating = feedback(
        inf["request_id"], event_time=at(1), kind="RATING", pairwise=None, rating={"index": 0, "label": True}
    )
    assert [o.role for o in h.send(FB, rating)] == ["unpaired"]
    h.send(INF, inference(event_time=at(200)))  # stream time moves past the window and grace: it expires
    before = h.joiner.duplicates
    assert h.send(INF, inf) == []  # the same bytes again, as after a restart
    assert h.joiner.duplicates == before + 1
    (out,) = h.send(INF, {**inf, "prompt": "Which answer is right?", "event_time": at(201)})
    assert out.role == "dead_letter" and out.record["error_class"] == "ConflictingInference"
    assert "first: an expired inference" in out.record["reason"]


@pytest.mark.parametrize(
    ("fb", "message"),
    [
        ({"pairwise": {"chosen": 3, "rejected": 0}}, "candidate 3 does not exist; the inference has 3"),
        (
            {"kind": "RANKING", "pairwise": None, "ranking": [{"index": 0, "rank": 1}, {"index": 8, "rank": 2}]},
            "candidate 8 does not exist",
        ),
        ({"kind": "RATING", "pairwise": None, "rating": {"index": 5, "label": True}}, "rating.index: candidate 5"),
    ],
)
def test_invalid_reference_goes_to_dead_letter_with_the_original_bytes(fb: dict[str, Any], message: str) -> None:
    h = Harness()
    inf = inference()
    h.send(INF, inf)
    (out,) = h.send(FB, feedback(inf["request_id"], event_time=at(1), **fb))
    assert out.role == "dead_letter" and out.record["error_class"] == "InvalidReference"
    assert message in out.record["reason"]
    assert h.codec.decode(out.record["value"], "FeedbackEvent")["request_id"] == inf["request_id"]
    assert out.record["source_offset"] == {"topic": FB, "partition": 0, "offset": 0}


def test_chosen_equal_rejected_from_a_non_sdk_producer_is_dead_lettered() -> None:
    h = Harness()
    inf = inference()
    h.send(INF, inf)
    fb = feedback_record(feedback(inf["request_id"], event_time=at(1)))
    fb["pairwise"] = {"chosen": 1, "rejected": 1}
    (out,) = h.raw(FB, inf["request_id"].encode(), h.codec.encode("FeedbackEvent", fb))
    assert out.role == "dead_letter" and "chosen and rejected are both candidate 1" in out.record["reason"]


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        (b"k", b"not avro at all", "DecodeError"),
        (b"k", b"", "DecodeError"),
        (b"wrong-key", None, "KeyMismatch"),
    ],
)
def test_undecodable_or_misrouted_records_are_dead_lettered(key: bytes, value: bytes | None, error: str) -> None:
    h = Harness()
    if value is None:
        value = h.codec.encode("InferenceEvent", inference_record(inference()))
    (out,) = h.raw(INF, key, value)
    assert out.role == "dead_letter" and out.record["error_class"] == error
    assert out.record["value"] == value and out.record["key"] == key


def test_expiry_emits_no_feedback_and_no_inference() -> None:
    h = Harness()
    lonely_inf, orphan_fb = inference(), feedback(str(uuid.uuid4()), event_time=at(0))
    h.send(INF, lonely_inf)
    h.send(FB, orphan_fb)
    assert h.send(INF, inference(event_time=at(65))) == []  # stream time 65 min: not yet past 60 + 5
    out = h.send(INF, inference(event_time=at(65.1)))
    assert sorted((e.record["reason"], e.record["record_type"]) for e in out) == [
        ("NO_FEEDBACK", "InferenceEvent"),
        ("NO_INFERENCE", "FeedbackEvent"),
    ]
    assert {e.record["request_id"] for e in out} == {lonely_inf["request_id"], orphan_fb["request_id"]}


def test_late_feedback_is_emitted_as_late_not_dropped() -> None:
    h = Harness()
    inf = inference()
    h.send(INF, inf)
    h.send(INF, inference(event_time=at(70)))  # expires inf
    (out,) = h.send(FB, feedback(inf["request_id"], event_time=at(71)))
    assert out.role == "unmatched" and out.record["reason"] == "LATE"


def test_feedback_beyond_the_window_but_before_expiry_is_late() -> None:
    h = Harness()
    inf = inference()
    h.send(INF, inf)
    (out,) = h.send(FB, feedback(inf["request_id"], event_time=at(62)))
    assert out.record["reason"] == "LATE" and "the window is 3600000 ms" in out.record["detail"]


def test_inference_that_got_feedback_expires_silently_and_markers_are_cleaned() -> None:
    h = Harness(late_retention_ms=10 * MIN)
    inf = inference()
    h.send(INF, inf)
    h.send(FB, feedback(inf["request_id"], event_time=at(1)))
    assert h.send(INF, inference(event_time=at(66))) == []
    assert h.state[inf["request_id"]].done is True
    h.send(FB, feedback(str(uuid.uuid4()), event_time=at(80)))
    assert inf["request_id"] not in h.state


def test_idle_partition_expires_on_the_wall_clock() -> None:
    h = Harness(window_ms=2000, grace_ms=1000, idle_timeout_ms=5000)
    inf = inference()
    h.send(INF, inf)
    h.wall += 4000
    assert h.joiner.tick(0) == []  # idle for 4 s < 5 s
    h.wall += 2000
    (out,) = h.joiner.tick(0)
    assert out.record["reason"] == "NO_FEEDBACK"
    assert h.joiner.stream_times[0] == int(T0.timestamp() * 1000) + 6000


def test_state_restored_from_a_copy_continues() -> None:
    """What changelog recovery gives a new worker: the same mapping, and no in-memory index."""
    h = Harness()
    inf = inference()
    h.send(INF, inf)
    h.joiner.tick(0)
    h2 = Harness()
    h2.state.update(h.state)
    assert roles(h2.send(FB, feedback(inf["request_id"], event_time=at(2)))) == ["pairs"]
    assert roles(h2.send(INF, inference(event_time=at(70)))) == []  # the inference had feedback


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(6)), st.booleans())
def test_any_arrival_order_gives_the_same_pairs(order: list[int], duplicate: bool) -> None:
    infs = [inference(event_time=at(i)) for i in range(3)]
    fbs = [feedback(i["request_id"], event_time=at(n + 1)) for n, i in enumerate(infs)]
    events = [(INF, e) for e in infs] + [(FB, e) for e in fbs]
    h = Harness()
    emitted = []
    for k in order:
        emitted += h.send(*events[k])
        if duplicate:
            emitted += h.send(*events[k])
    expected = sorted(pair_id(f["feedback_id"], 0, 1) for f in fbs)
    assert sorted(e.record["pair_id"] for e in emitted if e.role == "pairs") == expected
    assert [e for e in emitted if e.role != "pairs"] == []


# -- nothing a record contains can crash the join (issue 9, A.4) ---------------------------------


def test_state_writes_are_filed_under_the_partition_of_the_record_that_caused_them() -> None:
    """The feedback's write goes to its own partition, the one its batch holds an event of.

    A request_id's records on two partitions (producers partitioning the topics differently) share one entry in a
    memory store, whose partition is the inference's.
    """
    h = Harness()
    inf = inference()
    h.send(INF, inf, partition=0)
    fb = feedback(inf["request_id"])
    value = h.codec.encode("FeedbackEvent", feedback_record(fb))
    out = h.joiner.process(FB, 1, 0, inf["request_id"].encode(), value)
    assert roles(out) == ["pairs"]
    assert sorted(h.staged.drain()) == [1]


def test_a_dead_letter_of_a_keyless_record_is_keyed_by_its_id_so_a_re_emission_lands_on_the_same_partition() -> None:
    h = Harness()
    inf = inference()
    value = h.codec.encode("InferenceEvent", inference_record(inf))
    first = h.joiner.process(INF, 0, 7, None, value)
    again = h.joiner.process(INF, 0, 7, None, value)  # the same record, joined again after a restart
    assert roles(first) == roles(again) == ["dead_letter"]
    assert first[0].key == again[0].key == first[0].record["dead_letter_id"].encode()
