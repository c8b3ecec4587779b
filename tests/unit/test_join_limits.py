"""The join's limits and failures, driven directly.

Output and input sizes, bounded state, event-time skew, feedback that decides no pair, and a join or a store
that fails.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

import pytest

from preflog.processors.entry import encode_entry, legacy_stream_time_key
from preflog.processors.staged import StagedState
from preflog.processors.table_state import TableEntries
from preflog.schemas.events import feedback_record, inference_record

from ..conftest import feedback, inference
from .join_harness import FB, INF, MIN, Harness, at, ms, roles


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
