"""The reconciliation ledgers, on hand-made facts."""

from __future__ import annotations

import pytest

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
    records = {o: None for o in range(14)}
    led = output_ledger(T, 0, records, [m(0, 3, 4), m(8, 9, 2)], 12, None)
    assert led.problems == ["offsets 4-7, 10-11 are in no file, below what the sink wrote or committed"]
    assert (led.counts["missing"], led.counts["pending"]) == (6, 2)


def test_outputs_a_gap_below_the_files_is_missing_even_without_a_commit() -> None:
    led = output_ledger(T, 0, {o: None for o in range(10)}, [m(0, 3, 4), m(6, 7, 2)], None, None)
    assert led.problems == ["offsets 4-5 are in no file, below what the sink wrote or committed"]
    assert led.counts["pending"] == 2


def test_outputs_a_repaired_manifest_does_not_know_its_skipped_count() -> None:
    led = output_ledger(T, 0, {o: None for o in range(6)}, [m(0, 5, 2, -1, "a"), m(0, 5, 2, 1, "b")], 6, None)
    assert led.ok, led.problems


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


def rec(
    offset: int, kind: str | None = "feedback", fid: str = "", event_ms: int = 0, digest: str = "", rid: str = "r"
) -> InputRecord:
    topic = "inf" if kind == "inference" else "fb"
    return InputRecord(topic, 0, offset, kind, rid, fid or f"f{offset}", event_ms, digest or f"d{offset}")


HOUR = 3_600_000


def outcomes(**kw: object) -> Outcomes:
    out = Outcomes()
    for offset in kw.get("joined", ()):  # type: ignore[attr-defined]
        out.add_joined(("fb", 0, offset), "r")
    for offset, reason in dict(kw.get("unmatched", {})).items():  # type: ignore[call-overload]
        out.add_unmatched(("fb", 0, offset), reason, f"u{offset}{reason}", "r", 0)
    for offset, cls in dict(kw.get("dead", {})).items():  # type: ignore[call-overload]
        out.add_dead(("fb", 0, offset), cls, f"d{offset}{cls}")
    return out


def test_inputs_each_category() -> None:
    records = [
        rec(0, fid="a", event_ms=0, rid="r0"),  # joined
        rec(1, fid="b", event_ms=0, rid="r1"),  # unmatched
        rec(2, fid="c", event_ms=0, rid="r2"),  # dead-lettered
        rec(3, fid="a", event_ms=0, rid="r0"),  # duplicate of 0 (same request, same feedback_id)
        rec(4, fid="e", event_ms=10 * HOUR, rid="r4"),  # open: waits for its inference, the newest
        rec(5, fid="f", event_ms=0, rid="r5"),  # unaccounted: old, no outcome
        rec(6, kind=None),  # undecodable, not dead-lettered
        rec(7, fid="h", event_ms=0, rid="r7"),  # pending: not committed
    ]
    out = Outcomes()
    out.add_joined(("fb", 0, 0), "r0")
    out.add_unmatched(("fb", 0, 1), "LATE", "u1", "r1", 0)
    out.add_dead(("fb", 0, 2), "DecodeError", "d2")
    (led,) = input_ledger(records, out, {("fb", 0): 7}, horizon_ms=HOUR)
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


def test_inputs_feedback_whose_inference_was_processed_is_never_open() -> None:
    """The join answers feedback for a known inference at once: no outcome means lost, whatever the window."""
    inference = InputRecord("inf", 0, 0, "inference", "r", "", 0, "x")
    feedback = InputRecord("fb", 0, 0, "feedback", "r", "f", 1000, "y")
    out = Outcomes()
    out.add_joined(("inf", 0, 0), "r")  # the inference was joined with some other feedback
    ledgers = input_ledger([inference, feedback], out, {("inf", 0): 1, ("fb", 0): 1}, horizon_ms=HOUR)
    assert [led.problems for led in ledgers] == [
        ["offset 0 (feedback f) has no outcome and its inference was processed"],
        [],
    ]


def test_inputs_the_processors_idle_stream_time_closes_windows() -> None:
    """Traffic stopped, the processor's stream time moved on: a lost inference must not stay open forever.

    The stream time is the one its unmatched records report.
    """
    inference = InputRecord("inf", 0, 0, "inference", "r", "", 0, "x")
    out = Outcomes()
    out.add_unmatched(("inf", 0, 9), "NO_FEEDBACK", "u", "q", 5 * HOUR)
    (led,) = input_ledger([inference], out, {("inf", 0): 1}, horizon_ms=HOUR)
    assert led.problems == ["offset 0 (inference r) has no outcome and its window closed"]


def test_inputs_the_same_feedback_id_for_another_request_is_no_duplicate() -> None:
    first = rec(0, fid="a", rid="r0", event_ms=10)
    other = rec(1, fid="a", rid="r1", event_ms=0)
    out = Outcomes()
    out.add_joined(("fb", 0, 0), "r0")
    (led,) = input_ledger([first, other], out, {("fb", 0): 2, ("inf", 0): 0}, horizon_ms=1)
    assert led.counts["duplicate"] == 0 and led.counts["unaccounted"] == 1


def test_inputs_two_outcomes_for_one_record_is_a_conflict() -> None:
    out = Outcomes()
    out.add_joined(("fb", 0, 0), "r")
    out.add_unmatched(("fb", 0, 0), "LATE", "u", "r", 0)
    (led,) = input_ledger([rec(0)], out, {("fb", 0): 1}, horizon_ms=1)
    assert led.problems == ["offset 0 has 2 outcomes: joined, unmatched LATE"]


def test_inputs_two_different_unmatched_records_for_one_record_conflict_re_emissions_do_not() -> None:
    out = Outcomes()
    out.add_unmatched(("fb", 0, 0), "LATE", "u1", "r", 0)
    out.add_unmatched(("fb", 0, 0), "LATE", "u1", "r", 0)  # the same record again: a re-emission
    (led,) = input_ledger([rec(0)], out, {("fb", 0): 1}, horizon_ms=1)
    assert led.ok and led.counts["unmatched LATE"] == 1
    out.add_unmatched(("fb", 0, 0), "NO_INFERENCE", "u2", "r", 0)
    (led,) = input_ledger([rec(0)], out, {("fb", 0): 1}, horizon_ms=1)
    assert led.problems == ["offset 0 has 2 outcomes: unmatched LATE, unmatched NO_INFERENCE"]


def test_inputs_an_outcome_naming_another_request_is_not_this_records() -> None:
    out = Outcomes()
    out.add_joined(("fb", 0, 0), "someone-else")  # e.g. an output of an older incarnation of the topic
    (led,) = input_ledger([rec(0)], out, {("fb", 0): 1}, horizon_ms=1)
    assert led.problems == ["offset 0: outputs name request_id someone-else, the record holds r"]


def test_inputs_pairs_beside_a_too_large_one_are_joined() -> None:
    out = Outcomes()
    out.add_joined(("fb", 0, 0), "r")
    out.add_dead(("fb", 0, 0), "OutputTooLarge", "d")
    (led,) = input_ledger([rec(0)], out, {("fb", 0): 1}, horizon_ms=1)
    assert led.ok and led.counts["joined"] == 1


def test_inputs_nothing_committed_is_pending_and_said() -> None:
    (led,) = input_ledger([rec(0), rec(1)], Outcomes(), {}, horizon_ms=1)
    assert led.counts["pending"] == 2
    assert led.problems and "committed nothing here, so 2 record(s)" in led.problems[0]


def test_a_final_reconcile_with_only_undecided_records_says_so_instead_of_unaccounted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from preflog.cli.audit import _print
    from preflog.sinks.ledger import Ledger
    from preflog.sinks.reconcile import Reconciliation

    open_only = Reconciliation(inputs=[Ledger("fb", 0, problems=["1 record(s) open (--final: ...)"])], undecided=1)
    assert not open_only.ok and open_only.only_undecided
    _print(open_only, "file:///log", {"fb": "feedback"}, 25.0)
    said = capsys.readouterr().out
    assert "NOT DECIDED YET" in said and "25 s" in said and "UNACCOUNTED" not in said
    missing = Reconciliation(
        inputs=[Ledger("fb", 0, problems=["1 record(s) open (--final: ...)", "offset 3 has no outcome"])], undecided=1
    )
    assert not missing.only_undecided
    _print(missing, "file:///log", {"fb": "feedback"}, 25.0)
    assert "UNACCOUNTED RECORDS FOUND" in capsys.readouterr().out
