"""The reconciliation ledgers, on hand-made facts."""

from __future__ import annotations

from preflog.sinks.ledger import InputRecord, Outcomes, input_ledger, output_ledger, spans
from preflog.sinks.manifest import Manifest

T = "out"


def m(first: int, last: int, rows: int, skipped: int = 0, file: str = "f") -> Manifest:
    return Manifest(file, "pairs", T, 0, first, last, rows, skipped, "", "PreferencePair", "", "")


def test_spans() -> None:
    assert spans([7, 1, 2, 3, 3]) == [(1, 3), (7, 7)]
    assert spans([]) == []


def test_outputs_all_in_files_is_ok() -> None:
    records = {o: f"id{o}" for o in range(10)}
    led = output_ledger(T, 0, records, [m(0, 4, 5), m(5, 9, 4, skipped=1)], 10, {f"id{o}" for o in range(10)})
    assert led.ok, led.problems
    assert (led.counts["records"], led.counts["in_files"], led.counts["missing"]) == (10, 10, 0)


def test_outputs_a_deleted_range_below_the_commit_is_missing_above_it_pending() -> None:
    records = {o: None for o in range(12)}
    led = output_ledger(T, 0, records, [m(0, 3, 4), m(8, 9, 2)], 10, None)
    assert led.problems == ["offsets 4-7 were committed by the sink but are in no file"]
    assert (led.counts["missing"], led.counts["pending"]) == (4, 2)


def test_outputs_a_range_whose_rows_do_not_add_up() -> None:
    led = output_ledger(T, 0, {o: None for o in range(5)}, [m(0, 4, 3)], 5, None)
    assert led.problems == ["offsets 0-4: the topic holds 5 record(s), the log 3 row(s) + 0 skipped duplicate(s)"]


def test_outputs_split_files_of_one_range_add_their_rows_and_count_skipped_once() -> None:
    led = output_ledger(T, 0, {o: None for o in range(6)}, [m(0, 5, 2, 2, "a"), m(0, 5, 2, 2, "b")], 6, None)
    assert led.ok, led.problems


def test_outputs_an_id_in_no_file() -> None:
    led = output_ledger(T, 0, {0: "a", 1: "b"}, [m(0, 1, 2)], 2, {"a"})
    assert led.problems == ["ids of offsets 1 are in no file (covered by a range)"]


def test_outputs_overlapping_ranges() -> None:
    led = output_ledger(T, 0, {o: None for o in range(6)}, [m(0, 3, 4), m(2, 5, 4)], 6, None)
    assert any("two ranges" in p for p in led.problems)


def rec(offset: int, kind: str | None = "feedback", fid: str = "", event_ms: int = 0, digest: str = "") -> InputRecord:
    topic = "inf" if kind == "inference" else "fb"
    return InputRecord(topic, 0, offset, kind, "r", fid or f"f{offset}", event_ms, digest or f"d{offset}")


def test_inputs_each_category() -> None:
    hour = 3_600_000
    records = [
        rec(0, fid="a", event_ms=0),  # joined
        rec(1, fid="b", event_ms=0),  # unmatched
        rec(2, fid="c", event_ms=0),  # dead-lettered
        rec(3, fid="a", event_ms=0),  # duplicate of 0
        rec(4, fid="e", event_ms=10 * hour),  # open: the newest
        rec(5, fid="f", event_ms=0),  # unaccounted: old, no outcome
        rec(6, kind=None),  # undecodable, not dead-lettered
        rec(7, fid="h", event_ms=0),  # pending: not committed
    ]
    outcomes = Outcomes(joined={("fb", 0, 0)}, unmatched={("fb", 0, 1): "LATE"}, dead={("fb", 0, 2): "DecodeError"})
    (led,) = input_ledger(records, outcomes, {("fb", 0): 7}, horizon_ms=hour)
    assert dict(led.counts) == {
        "joined": 1,
        "unmatched LATE": 1,
        "dead-lettered": 1,
        "duplicate": 1,
        "open": 1,
        "unaccounted": 2,
        "pending": 1,
    }
    assert led.problems == [
        "offset 5 (feedback f) has no outcome and its window closed",
        "offset 6 does not decode and was not dead-lettered",
    ]


def test_inputs_two_outcomes_for_one_record_is_a_conflict() -> None:
    outcomes = Outcomes(joined={("fb", 0, 0)}, unmatched={("fb", 0, 0): "LATE"})
    (led,) = input_ledger([rec(0)], outcomes, {("fb", 0): 1}, horizon_ms=1)
    assert led.problems == ["offset 0 has 2 outcomes: joined, unmatched LATE"]


def test_inputs_nothing_committed_is_all_pending() -> None:
    (led,) = input_ledger([rec(0), rec(1)], Outcomes(), {}, horizon_ms=1)
    assert led.ok and led.counts["pending"] == 2
