"""Unmatched records and dead letters carry deterministic ids, so re-emissions are stored once."""

from __future__ import annotations

from datetime import datetime, timezone

from preflog.processors.records import dead_letter, dead_letter_id, unmatched_id, unmatched_record
from preflog.schemas.codec import SingleObjectCodec

AT = {"topic": "preflog.feedback.v1", "partition": 2, "offset": 41}
WHEN = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_a_dead_letter_id_is_the_same_on_re_emission_and_differs_per_record() -> None:
    first = dead_letter("bad", "DecodeError", "decode", b"k", b"\x00\x01", AT, WHEN)
    again = dead_letter("bad", "DecodeError", "decode", b"k", b"\x00\x01", AT, datetime.now(timezone.utc))
    assert first["dead_letter_id"] == again["dead_letter_id"]  # failed_at differs, the id does not
    others = {
        dead_letter_id({**AT, "offset": 42}, "DecodeError", b"\x00\x01"),  # another offset
        dead_letter_id(AT, "KeyMismatch", b"\x00\x01"),  # another error
        dead_letter_id(AT, "DecodeError", b"\x00\x02"),  # same offset, another record (a recreated topic)
        dead_letter_id(AT, "DecodeError", None),
    }
    assert first["dead_letter_id"] not in others and len(others) == 4
    assert SingleObjectCodec().decode(SingleObjectCodec().encode("DeadLetter", first), "DeadLetter") == first


def test_an_unmatched_id_is_the_same_on_re_emission_and_differs_per_outcome() -> None:
    rid = "00000000-0000-4000-8000-000000000001"
    record = {"request_id": rid, "feedback_id": "f", "event_time": WHEN}
    first = unmatched_record("LATE", "late", "FeedbackEvent", record, 0, b"v", AT)
    again = unmatched_record("LATE", "later", "FeedbackEvent", record, 99, b"v", AT)
    assert first["unmatched_id"] == again["unmatched_id"]
    assert first["unmatched_id"] != unmatched_id("NO_INFERENCE", "FeedbackEvent", AT, b"v")
    assert first["unmatched_id"] != unmatched_id("LATE", "FeedbackEvent", {**AT, "offset": 42}, b"v")
    assert first["unmatched_id"] != unmatched_id("LATE", "FeedbackEvent", AT, b"w")  # same offset, other record
    assert SingleObjectCodec().decode(SingleObjectCodec().encode("UnmatchedRecord", first), "UnmatchedRecord") == {
        **first,
        "inference_offset": None,
    }
