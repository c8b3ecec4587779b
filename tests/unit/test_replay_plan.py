"""Replay's pure parts: offset specs, range filters, the deterministic merge, and where output may go."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflog.kafka.offsets import OffsetSpec, OffsetSpecError
from preflog.kafka.offsets import parse_offset_spec as parse_any_offset_spec
from preflog.kafka.offsets import pick_offset as _pick
from preflog.processors.join import JoinConfig, Joiner
from preflog.processors.ranges import Range, RangeError, parse_offset_spec
from preflog.processors.replay import ReplayOutputError, _fewer_collections, ensure_unused, replay_output
from preflog.processors.replay_merge import RECORD_OVERHEAD, Merge
from preflog.schemas.codec import SingleObjectCodec
from preflog.sinks.storage import Storage


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("1200", OffsetSpec(None, None, 1200)),
        ("2=1200", OffsetSpec(None, 2, 1200)),
        ("feedback:2=1200", OffsetSpec("feedback", 2, 1200)),
        ("inference:0", OffsetSpec("inference", None, 0)),
        (" 7 ", OffsetSpec(None, None, 7)),
    ],
)
def test_offset_specs_parse(text: str, spec: OffsetSpec) -> None:
    assert parse_offset_spec(text) == spec


@pytest.mark.parametrize("text", ["", "-1", "pairs:1=2", "1=2=3", "feedback:", "a=1", "1.5"])
def test_bad_offset_specs_name_the_form(text: str) -> None:
    with pytest.raises(RangeError, match=r"\[inference:\|feedback:\]\[PARTITION=\]OFFSET"):
        parse_offset_spec(text)


def test_the_most_specific_offset_spec_wins() -> None:
    specs = [parse_offset_spec(s) for s in ("10", "2=20", "feedback:30", "feedback:2=40")]
    assert _pick(specs, "feedback", 2) == 40
    assert _pick(specs, "inference", 2) == 20
    assert _pick(specs, "feedback", 1) == 30
    assert _pick(specs, "inference", 1) == 10
    assert _pick([], "inference", 1) is None


def test_range_counts_and_time_filter() -> None:
    r = Range("feedback", "fb", 0, start=10, end=25, from_ms=1000, to_ms=2000)
    assert r.planned == 15
    assert [r.wants(t) for t in (999, 1000, 1999, 2000)] == [False, True, True, False]
    assert Range("feedback", "fb", 0, 30, 25).planned == 0
    assert Range("feedback", "fb", 0, 0, 5).wants(-1)  # no filter: every record


@dataclass
class FakeMessage:
    role: str
    ts: int
    off: int

    def timestamp(self) -> tuple[int, int]:
        return (1, self.ts)

    def offset(self) -> int:
        return self.off

    def value(self) -> bytes:
        return b"x" * (self.off + 1)


streams = st.lists(st.integers(0, 50), max_size=30).map(sorted)


@given(streams, streams, st.lists(st.booleans(), max_size=80), st.lists(st.booleans(), max_size=80))
def test_merge_order_does_not_depend_on_how_records_arrive(
    inf_ts: list[int], fb_ts: list[int], arrival: list[bool], polls: list[bool]
) -> None:
    """Whatever the interleaving of fetches, the merged order is (timestamp, inference first, offset)."""
    inf = [FakeMessage("inference", t, i) for i, t in enumerate(inf_ts)]
    fb = [FakeMessage("feedback", t, i) for i, t in enumerate(fb_ts)]
    ranges = [Range("inference", "i", 0, 0, len(inf)), Range("feedback", "f", 0, 0, len(fb))]
    merge = Merge(ranges)
    out: list[Any] = []
    queues = {"inference": list(inf), "feedback": list(fb)}
    steps = iter(zip(arrival + [True] * 200, polls + [True] * 200, strict=True))
    while any(queues.values()):
        take_inference, poll = next(steps)
        role = "inference" if (take_inference and queues["inference"]) or not queues["feedback"] else "feedback"
        merge.push(role, cast(Any, queues[role].pop(0)))
        if not queues[role]:
            merge.done[role] = True
        if poll:
            out += merge.ready()
    merge.done.update({"inference": True, "feedback": True})
    out += merge.ready()
    assert merge.finished and merge.held == {"inference": 0, "feedback": 0}  # the bytes held go with the records
    expected = sorted(inf + fb, key=lambda m: (m.ts, m.role != "inference", m.off))
    assert out == expected


def test_merge_waits_for_an_input_that_is_not_done() -> None:
    merge = Merge([Range("inference", "i", 0, 0, 2), Range("feedback", "f", 0, 0, 2)])
    merge.push("feedback", cast(Any, FakeMessage("feedback", 5, 0)))
    assert merge.ready() == []  # an inference at timestamp <= 5 could still come
    assert merge.held == {"inference": 0, "feedback": 1 + RECORD_OVERHEAD}  # what throttle() pauses an input by
    merge.push("inference", cast(Any, FakeMessage("inference", 9, 3)))
    assert [cast(Any, m).role for m in merge.ready()] == ["feedback"]
    assert not merge.finished and merge.held == {"inference": 4 + RECORD_OVERHEAD, "feedback": 0}


@pytest.mark.parametrize(
    "output",
    ["file:///data/audit", "/data/audit", "/data/audit/", "file:///data/audit/pairs", "/data", "file:///"],
)
def test_replay_never_writes_into_the_live_log(output: str) -> None:
    with pytest.raises(ReplayOutputError, match="never writes there"):
        replay_output("file:///data/audit", "x", output)


def test_replay_output_defaults_beside_the_live_tables() -> None:
    assert replay_output("file:///data/audit", "nov", None) == "file:///data/audit/_replays/nov"
    assert replay_output("s3://bucket/audit", "nov", None) == "s3://bucket/audit/_replays/nov"
    assert replay_output("file:///data/audit", "nov", "/elsewhere/r") == "file:///elsewhere/r"


def test_dead_letters_take_their_time_from_the_joiners_clock() -> None:
    """Replay passes the source record's timestamp, so failed_at is the same on every replay."""
    joiner = Joiner(JoinConfig(), SingleObjectCodec(), {}, "inf", "fb", wall_ms=lambda: 1_700_000_000_000)
    [dead] = joiner.process("fb", 0, 3, b"k", b"not avro")
    assert dead.role == "dead_letter"
    assert dead.record["failed_at"] == datetime.fromtimestamp(1_700_000_000, tz=timezone.utc)


def test_a_replay_writes_only_into_an_empty_prefix(tmp_path: Path) -> None:
    target = f"file://{tmp_path}/replay"
    storage = Storage(target)
    ensure_unused(storage, target)  # nothing there yet
    storage.put("pairs/dt=2026-11-01/x.parquet", b"data")
    with pytest.raises(ReplayOutputError, match=r"already holds files.*choose another --name or --output"):
        ensure_unused(storage, target)


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("preflog.pairs.v1.ab12:0=3", OffsetSpec("preflog.pairs.v1.ab12", 0, 3)),
        ("my_topic-2:7", OffsetSpec("my_topic-2", None, 7)),
        ("0=3", OffsetSpec(None, 0, 3)),
        ("12", OffsetSpec(None, None, 12)),
    ],
)
def test_offsets_reset_names_topics_in_the_same_syntax(text: str, spec: OffsetSpec) -> None:
    assert parse_any_offset_spec(text) == spec


@pytest.mark.parametrize("text", ["t:0=x", "t:", "a b:1", "t:0=1=2"])
def test_a_bad_topic_offset_names_the_form(text: str) -> None:
    with pytest.raises(OffsetSpecError, match=r"\[TOPIC:\]\[PARTITION=\]OFFSET"):
        parse_any_offset_spec(text)


def test_an_offset_for_a_topic_applies_to_that_topic_only() -> None:
    specs = [parse_any_offset_spec(s) for s in ("t.a:0=3", "5")]
    assert _pick(specs, "t.a", 0) == 3
    assert _pick(specs, "t.a", 1) == 5
    assert _pick(specs, "t.b", 0) == 5
    assert _pick(specs[:1], "t.b", 0) is None


def test_a_replay_collects_cycles_less_often_meanwhile_and_restores_the_thresholds() -> None:
    old = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with _fewer_collections():
            assert gc.get_threshold() == (10_000, 50, 100)
        assert gc.get_threshold() == (700, 10, 10)
        gc.set_threshold(50_000, 5, 200)  # never lowered, only raised
        with _fewer_collections():
            assert gc.get_threshold() == (50_000, 50, 200)
        gc.set_threshold(0, 10, 10)  # automatic collection off: stays off
        with _fewer_collections():
            assert gc.get_threshold()[0] == 0
        assert gc.get_threshold() == (0, 10, 10)
    finally:
        gc.set_threshold(*old)


def test_a_range_that_selects_nothing_is_explained_by_its_partition_s_offsets_and_times() -> None:
    from preflog.cli.replay import _offsets, _times

    def r(start: int, end: int, low: int = 0, log_end: int = 852, from_ms: int | None = None) -> Range:
        return Range("inference", "inf", 3, start, end, from_ms, None, low, log_end)

    assert _offsets(r(0, 0, 0, 0)) == "inference partition 3 (inf): holds no records"
    past = _offsets(r(900, 852))
    assert past == "inference partition 3 (inf): holds offsets 0-851; --start-offset 900 is past its end (852)"
    assert _offsets(r(852, 852, from_ms=1)).endswith("holds offsets 0-851; none written at or after --from")
    assert _offsets(r(200, 100)).endswith("asked from 200 to before 100")  # --end-offset before --start-offset
    day = 1_796_601_600_000  # 2026-12-07T00:00:00Z
    assert _times(r(0, 852), (day, day + 61_000)).endswith(
        "offsets 0-851, written 2026-12-07T00:00:00Z to 2026-12-07T00:01:01Z"
    )
    assert _times(r(0, 852), None) == "inference partition 3 (inf): offsets 0-851"
