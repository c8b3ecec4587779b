"""The join state machine, driven directly (no Kafka): orders, windows, expiry, idempotence, bad references."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflog.processors.entry import encode_entry, legacy_stream_time_key
from preflog.processors.join import Emit, JoinConfig, Joiner
from preflog.processors.pairs import pair_id
from preflog.processors.staged import StagedState
from preflog.processors.table_state import TableEntries, TableStreamTimes
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record

from ..conftest import T0, feedback, inference

INF, FB = "inference", "feedback"
MIN = 60_000


class Harness:
    """A Joiner over the worker's state views of a bytes table (a dict here), with a fake wall clock.

    Each record is a batch: its staged changes reach the table after it, as a checkpoint writes them.
    """

    def __init__(self, **config: Any) -> None:
        self.codec = SingleObjectCodec()
        self.table: dict[bytes, bytes] = {}
        self.staged: StagedState[bytes, bytes] = StagedState(self.table)
        self.state = TableEntries(self.staged)
        self.wall = 1_000_000
        self.config = JoinConfig(**{"window_ms": 60 * MIN, "grace_ms": 5 * MIN, **config})
        self.joiner = Joiner(
            self.config,
            self.codec,
            self.state,
            INF,
            FB,
            wall_ms=lambda: self.wall,
            stream_times=TableStreamTimes(self.staged),
        )
        self.offsets: Counter[str] = Counter()

    def commit(self) -> None:
        for changes in self.staged.drain().values():
            for key, value in changes:
                if value is None:
                    self.table.pop(key, None)
                else:
                    self.table[key] = value

    def send(
        self,
        topic: str,
        event: dict[str, Any],
        partition: int = 0,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
    ) -> list[Emit]:
        if topic == INF:
            value = self.codec.encode("InferenceEvent", inference_record(event))
        else:
            value = self.codec.encode("FeedbackEvent", feedback_record(event))
        return self.raw(topic, key or event["request_id"].encode(), value, partition, timestamp_ms)

    def raw(
        self, topic: str, key: bytes | None, value: bytes, partition: int = 0, timestamp_ms: int | None = None
    ) -> list[Emit]:
        self.offsets[topic] += 1
        out = self.joiner.process(topic, partition, self.offsets[topic] - 1, key, value, timestamp_ms)
        self.commit()
        return out


def roles(emits: list[Emit]) -> list[str]:
    return [e.role for e in emits]


def at(minutes: float) -> Any:
    return T0 + timedelta(minutes=minutes)


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


def ms(minutes: float) -> int:
    return int(at(minutes).timestamp() * 1000)


def test_every_output_is_encoded_in_the_join_before_anything_is_sent() -> None:
    h = Harness()
    inf = inference()
    h.send(INF, inf)
    (out,) = h.send(FB, feedback(inf["request_id"], event_time=at(3)))
    assert h.codec.decode(out.value, "PreferencePair")["pair_id"] == out.record["pair_id"]


def test_an_output_over_max_output_bytes_becomes_a_dead_letter_keeping_its_input() -> None:
    h = Harness(max_input_bytes=200_000, max_output_bytes=100_000)
    big = [{"index": i, "text": str(i) * 60_000} for i in range(3)]  # 180 kB inference; a pair holds 120 kB
    inf = inference(candidates=big)
    assert h.send(INF, inf) == []
    (out,) = h.send(FB, feedback(inf["request_id"], event_time=at(3)))
    assert out.role == "dead_letter" and out.record["error_class"] == "OutputTooLarge"
    assert "PreferencePair" in out.record["reason"] and "max_output_bytes=100000" in out.record["reason"]
    assert h.codec.decode(out.record["value"], "FeedbackEvent")["request_id"] == inf["request_id"]
    assert out.record["source_offset"] == {"topic": FB, "partition": 0, "offset": 0}
    assert len(out.value) <= 100_000 and h.codec.decode(out.value, "DeadLetter")["error_class"] == "OutputTooLarge"
    assert h.state[inf["request_id"]].judged == 1  # the feedback had its outcome: no NO_FEEDBACK later


def test_an_output_that_cannot_be_encoded_becomes_a_dead_letter(monkeypatch: pytest.MonkeyPatch) -> None:
    """What an Avro int beyond 32 bits did to deliver(): the pair it made failed to encode, and the worker crashed."""
    from preflog.processors import join

    original = join.pair_record
    monkeypatch.setattr(join, "pair_record", lambda *a: {**original(*a), "chosen_index": 2**70})
    h = Harness()
    inf = inference()
    h.send(INF, inf)
    (out,) = h.send(FB, feedback(inf["request_id"], event_time=at(3)))
    assert out.role == "dead_letter" and out.record["error_class"] == "OutputNotEncodable"
    assert "OverflowError" in out.record["reason"] and out.record["stage"] == "encode"
    assert h.codec.decode(out.value, "DeadLetter")["source_offset"]["topic"] == FB


def test_an_input_over_max_input_bytes_is_dead_lettered_truncated_and_never_stored() -> None:
    h = Harness(max_input_bytes=200_000, max_output_bytes=100_000)
    inf = inference(prompt="p" * 300_000)  # the 1.2 MB prompt, scaled down with the limits
    value = h.codec.encode("InferenceEvent", inference_record(inf))
    (out,) = h.raw(INF, inf["request_id"].encode(), value)
    assert out.role == "dead_letter" and out.record["error_class"] == "InputTooLarge"
    assert "max_input_bytes=200000" in out.record["reason"]
    assert f"first {len(out.record['value'])} of the value's {len(value)} bytes" in out.record["reason"]
    assert f"the whole record is at {INF}[0] offset 0" in out.record["reason"]
    assert value.startswith(out.record["value"]) and 50_000 < len(out.record["value"]) < 100_000
    assert len(out.value) + len(out.key or b"") <= 100_000
    assert h.state == {}
    # its feedback waits (and would expire as NO_INFERENCE): nothing was stored for it
    assert h.send(FB, feedback(inf["request_id"], event_time=at(1))) == []


def test_feedback_waiting_for_one_request_is_bounded() -> None:
    """Counted as stored (exactly, in the table's encoding): 3,000 small feedbacks once made a 1.1 MB entry."""
    h = Harness(max_entry_bytes=6000)
    rid = str(uuid.uuid4())
    kept = [h.send(FB, feedback(rid, event_time=at(1), rationale="r" * 1500)) for _ in range(3)]
    (out,) = h.send(FB, feedback(rid, event_time=at(1), rationale="r" * 1500))
    assert kept == [[], [], []]
    assert out.role == "dead_letter" and out.record["error_class"] == "InputTooLarge"
    assert "3 feedback record(s) already wait" in out.record["reason"]
    assert "max_state_entry_bytes=6000" in out.record["reason"]
    assert len(h.state[rid].feedback) == 3 and len(encode_entry(h.state[rid])) < 6000


def test_a_full_entry_still_joins_but_stops_remembering_feedback_ids() -> None:
    """Thousands of judgements of one inference must not grow its changelog record past what a producer sends."""
    h = Harness(max_entry_bytes=2000)
    inf = inference(prompt="p" * 1000)  # an entry of about 1.3 kB: room for about 17 feedback ids
    h.send(INF, inf)
    out = [h.send(FB, feedback(inf["request_id"], event_time=at(1))) for _ in range(40)]
    assert [roles(o) for o in out] == [["pairs"]] * 40
    assert len(encode_entry(h.state[inf["request_id"]])) < 2000 and 0 < len(h.state[inf["request_id"]].seen) < 40


def test_an_event_time_far_ahead_of_its_record_timestamp_is_dead_lettered_and_does_not_move_stream_time() -> None:
    h = Harness(max_event_time_skew_ms=60 * MIN)
    h.wall = ms(10_000)
    inf = inference()
    assert h.send(INF, inf, timestamp_ms=ms(0)) == []
    far = datetime(9999, 1, 1, tzinfo=timezone.utc)
    (out,) = h.send(INF, inference(event_time=far), timestamp_ms=ms(1))
    assert out.role == "dead_letter" and out.record["error_class"] == "EventTimeSkew"
    assert "9999-01-01" in out.record["reason"] and "max_event_time_skew_s=3600" in out.record["reason"]
    assert h.joiner.stream_time[0] == ms(0)
    (pair,) = h.send(FB, feedback(inf["request_id"], event_time=at(2)), timestamp_ms=ms(2))
    assert pair.role == "pairs"  # later requests on the partition still join


def test_a_far_future_feedback_for_a_known_inference_gets_an_outcome() -> None:
    h = Harness()
    h.wall = ms(10_000)
    inf = inference()
    h.send(INF, inf, timestamp_ms=ms(0))
    far = datetime(9999, 1, 1, tzinfo=timezone.utc)
    (out,) = h.send(FB, feedback(inf["request_id"], event_time=far), timestamp_ms=ms(1))
    assert out.role == "dead_letter" and out.record["error_class"] == "EventTimeSkew"
    assert h.state[inf["request_id"]].inference  # the inference is still waiting in its window


def test_the_worker_clock_bounds_a_lying_record_timestamp() -> None:
    h = Harness()
    h.wall = ms(0)
    (out,) = h.send(INF, inference(event_time=at(600)), timestamp_ms=ms(600))  # both 10 h ahead of the clock
    assert out.record["error_class"] == "EventTimeSkew"


@pytest.mark.parametrize(
    ("fb", "detail"),
    [
        (
            {"kind": "RANKING", "pairwise": None, "ranking": [{"index": 0, "rank": 1}, {"index": 1, "rank": 1}]},
            "a ranking of ties decides no pair",
        ),
        (
            {"kind": "SCORES", "pairwise": None, "scores": [{"index": 0, "score": 0.5}, {"index": 1, "score": 0.6}]},
            "no two scores differ by more than score_margin=0.2",
        ),
    ],
)
def test_feedback_that_decides_no_pair_is_unmatched_no_pairs(fb: dict[str, Any], detail: str) -> None:
    h = Harness(score_margin=0.2)
    inf = inference()
    h.send(INF, inf)
    (out,) = h.send(FB, feedback(inf["request_id"], event_time=at(1), **fb))
    assert out.role == "unmatched" and out.record["reason"] == "NO_PAIRS" and detail in out.record["detail"]
    assert h.codec.decode(out.value, "UnmatchedRecord")["reason"] == "NO_PAIRS"
    assert h.send(INF, inference(event_time=at(70))) == []  # the inference had its judgement: no NO_FEEDBACK


def test_a_negative_candidate_index_is_an_invalid_reference_not_a_pair() -> None:
    h = Harness()
    inf = inference()
    h.send(INF, inf)
    fb = feedback_record(feedback(inf["request_id"], event_time=at(1)))
    fb["pairwise"] = {"chosen": -1, "rejected": 0}
    (out,) = h.raw(FB, inf["request_id"].encode(), h.codec.encode("FeedbackEvent", fb))
    assert out.role == "dead_letter" and out.record["error_class"] in ("ValidationError", "InvalidReference")
    assert "-1 is not a candidate index" in out.record["reason"]


def test_a_record_the_join_fails_on_is_dead_lettered_and_the_join_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug a record reveals must not crash the worker (it would crash again on the same record after a restart)."""
    from preflog.processors import join

    def broken(*args: Any) -> Any:
        raise IndexError("a bug")

    h = Harness()
    lonely, inf = inference(), inference(event_time=at(70))
    h.send(INF, lonely)
    monkeypatch.setattr(join, "expand", broken)
    h.send(INF, inf)
    out = h.send(FB, feedback(inf["request_id"], event_time=at(71)))
    assert [(e.role, e.record.get("error_class")) for e in out] == [("dead_letter", "JoinError")]
    assert "IndexError: a bug" in out[0].record["reason"] and out[0].record["source_offset"]["topic"] == FB
    monkeypatch.undo()
    assert roles(h.send(FB, feedback(inf["request_id"], event_time=at(72)))) == ["pairs"]


def test_outputs_of_expiry_survive_a_failure_on_the_record_that_caused_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from preflog.processors import join

    h = Harness()
    lonely, inf = inference(), inference(event_time=at(10))
    h.send(INF, lonely)
    h.send(INF, inf)
    monkeypatch.setattr(join, "expand", lambda *a: 1 / 0)
    out = h.send(FB, feedback(inf["request_id"], event_time=at(65.5)))  # expires lonely, then the join fails
    assert [(e.role, e.record.get("reason"), e.record.get("error_class")) for e in out] == [
        ("unmatched", "NO_FEEDBACK", None),
        ("dead_letter", out[1].record["reason"], "JoinError"),
    ]


def test_a_stored_record_whose_expiry_fails_is_dead_lettered() -> None:
    h = Harness()
    inf = inference()
    h.send(INF, inf)
    entry = h.state[inf["request_id"]]
    assert entry.inference is not None
    entry.inference = replace(entry.inference, value=b"not avro")  # stored by some other version
    h.state[inf["request_id"]] = entry
    (out,) = h.send(INF, inference(event_time=at(70)))
    assert out.role == "dead_letter" and out.record["error_class"] == "JoinError"
    assert out.record["value"] == b"not avro" and inf["request_id"] not in h.state


def test_a_failing_state_store_stops_the_worker() -> None:
    from preflog.processors.exceptions import StateError

    class Broken(dict[bytes, bytes]):
        def __getitem__(self, key: bytes) -> Any:
            raise OSError("disk gone")

    h = Harness()
    h.joiner.state = TableEntries(StagedState(Broken()))
    with pytest.raises(StateError, match="disk gone"):
        h.send(INF, inference())


def test_a_stream_time_saved_far_in_the_future_before_the_skew_check_is_dropped() -> None:
    """A partition poisoned by an earlier version (stream time 9999 saved) would expire every request on arrival."""
    h = Harness()
    h.wall = ms(100)
    far = int(datetime(9999, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
    h.table[legacy_stream_time_key(0)] = json.dumps({"st": far, "p": 0}).encode()  # as the previous version wrote it
    inf = inference()
    assert h.send(INF, inf, timestamp_ms=ms(0)) == []
    assert roles(h.send(FB, feedback(inf["request_id"], event_time=at(2)), timestamp_ms=ms(2))) == ["pairs"]
    h.joiner.tick(0)
    assert h.joiner.stream_times[0] == ms(2)


def test_a_dead_letter_quoting_a_huge_key_stays_under_the_output_limit() -> None:
    """The KeyMismatch reason quotes the key: a 2 MB key once made a 2 MB reason, too large to send."""
    h = Harness(max_output_bytes=100_000)
    inf = inference()
    value = h.codec.encode("InferenceEvent", inference_record(inf))
    (out,) = h.raw(INF, b"k" * 2_000_000, value)
    assert out.role == "dead_letter" and out.record["error_class"] == "KeyMismatch"
    assert len(out.value) + len(out.key or b"") <= 100_000
    assert "more characters" in out.record["reason"] and "truncated" in out.record["reason"]
    assert out.record["value"] == value  # the value fits: kept whole
