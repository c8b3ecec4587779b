"""The join state's table format: typed entries, their binary encoding, and the previous version's JSON."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from preflog.processors.entry import (
    Entry,
    Stored,
    decode_entry,
    decode_stream_time,
    encode_entry,
    encode_stream_time,
    entry_due,
    entry_key,
    entry_size,
    legacy_stream_time_key,
    request_id_of,
    stream_time_key,
    stream_time_partition,
)
from preflog.processors.exceptions import StateError
from preflog.processors.join import JoinConfig, Joiner
from preflog.processors.staged import StagedState
from preflog.processors.table_state import TableEntries, TableStreamTimes
from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record

from ..conftest import T0, feedback, inference

RID = "0b6f2d1c-49f4-4a57-9b5e-8c0f4a1d2e3f"
AT = {"topic": "inference", "partition": 3, "offset": 17}

stored = st.builds(
    Stored,
    value=st.binary(max_size=300),
    topic=st.text(max_size=40),
    partition=st.integers(0, 2**31),
    offset=st.integers(0, 2**62),
    event_ms=st.integers(-(2**62), 2**62),
    feedback_id=st.text(max_size=40),
)
entries = st.builds(
    Entry,
    partition=st.integers(0, 2**31),
    expires_ms=st.integers(-(2**62), 2**62),
    inference=st.none() | stored,
    feedback=st.lists(stored, max_size=4),
    seen=st.lists(st.text(max_size=40), max_size=5),
    digest=st.sampled_from([b"", hashlib.sha256(b"x").digest()]),
    judged=st.integers(0, 2**31),
    done=st.booleans(),
)


@given(entries)
def test_an_entry_decodes_to_itself_and_its_size_is_exact(entry: Entry) -> None:
    value = encode_entry(entry)
    assert decode_entry(value) == entry
    assert entry_size(entry) == len(value)
    assert entry_due(value) == (entry.partition, entry.expires_ms)  # read from the head alone


@dataclass
class Legacy:
    name: str
    stored: dict[str, object]
    expected: Entry


INF_V, FB_V = b"\x00inference wire bytes", b"\x01feedback wire bytes"
DIGEST = hashlib.sha256(INF_V).hexdigest()


@pytest.mark.parametrize(
    "case",
    [
        Legacy(
            "inference with judged feedback",
            {
                "p": 3,
                "inf": {"v": base64.b64encode(INF_V).decode(), "at": AT, "et": 1000},
                "h": DIGEST,
                "exp": 5000,
                "n": 2,
                "seen": ["f1", "f2"],
            },
            Entry(
                3, 5000, Stored(INF_V, "inference", 3, 17, event_ms=1000), [], ["f1", "f2"], bytes.fromhex(DIGEST), 2
            ),
        ),
        Legacy(
            "feedback waiting",
            {
                "p": 3,
                "inf": None,
                "fb": [{"id": "f9", "v": base64.b64encode(FB_V).decode(), "at": {**AT, "topic": "feedback"}}],
                "seen": [],
                "exp": 7000,
            },
            Entry(3, 7000, None, [Stored(FB_V, "feedback", 3, 17, feedback_id="f9")]),
        ),
        Legacy(
            "expiry marker",
            {"p": 3, "done": True, "h": DIGEST, "seen": ["f1"], "exp": 9000},
            Entry(3, 9000, seen=["f1"], digest=bytes.fromhex(DIGEST), done=True),
        ),
    ],
    ids=lambda c: c.name,
)
def test_an_entry_the_previous_version_wrote_is_read(case: Legacy) -> None:
    """A worker upgraded in place restores these from its changelog (Faust's json serializer wrote them)."""
    assert decode_entry(json.dumps(case.stored).encode()) == case.expected
    assert entry_due(json.dumps(case.stored).encode()) == (case.expected.partition, case.expected.expires_ms)


def test_an_unreadable_entry_stops_the_worker() -> None:
    with pytest.raises(StateError, match="cannot be read"):
        decode_entry(b"\x07garbage")
    with pytest.raises(StateError, match="cannot be read"):
        entry_due(b"\x01\x00\x00")
    with pytest.raises(StateError, match="truncated"):
        decode_entry(encode_entry(Entry(1, 2, seen=["abc"]))[:-1])


def test_keys_of_entries_and_stream_times_cannot_collide() -> None:
    assert entry_key(RID) == f'"{RID}"'.encode() and request_id_of(entry_key(RID)) == RID
    key = stream_time_key(5)
    with pytest.raises(UnicodeDecodeError):
        key.decode()  # no request_id, and no JSON string, encodes to it
    assert request_id_of(key) is None and stream_time_partition(key) == 5
    assert request_id_of(legacy_stream_time_key(5)) is None and stream_time_partition(entry_key(RID)) is None
    assert decode_stream_time(encode_stream_time(-12)) == -12
    assert decode_stream_time(json.dumps({"st": 99, "p": 5}).encode()) == 99


def _value(codec: SingleObjectCodec, record_type: str, event: dict[str, object]) -> bytes:
    if record_type == "InferenceEvent":
        return codec.encode(record_type, inference_record(event))
    return codec.encode(record_type, feedback_record(event))


def test_an_upgraded_worker_joins_against_state_in_the_old_format_and_rewrites_it() -> None:
    codec = SingleObjectCodec()
    inf = inference()
    rid = inf["request_id"]
    value = _value(codec, "InferenceEvent", inf)
    t0 = int(T0.timestamp() * 1000)
    old = {"p": 0, "inf": {"v": base64.b64encode(value).decode(), "at": {**AT, "partition": 0}, "et": t0},
           "h": hashlib.sha256(value).hexdigest(), "exp": t0 + 3_900_000, "n": 0, "seen": []}  # fmt: skip
    table = {json.dumps(rid).encode(): json.dumps(old).encode(), b'"~stream-time/0"': b'{"st": %d, "p": 0}' % t0}
    staged: StagedState[bytes, bytes] = StagedState(table)
    joiner = Joiner(JoinConfig(), codec, TableEntries(staged), "inference", "feedback",
                    stream_times=TableStreamTimes(staged))  # fmt: skip
    assert joiner.process("inference", 0, 18, rid.encode(), value) == []  # the same inference: a duplicate
    fb = feedback(rid)
    (pair,) = joiner.process("feedback", 0, 4, rid.encode(), _value(codec, "FeedbackEvent", fb))
    assert pair.role == "pairs" and pair.record["inference_offset"]["offset"] == 17
    joiner.tick(0)
    changes = dict(staged.drain()[0])
    written, clock = changes[entry_key(rid)], changes[stream_time_key(0)]
    assert written is not None and written[:1] == b"\x01" and decode_entry(written).judged == 1
    assert changes[b'"~stream-time/0"'] is None and clock is not None and decode_stream_time(clock) >= t0


def test_an_unreadable_stream_time_stops_the_worker_instead_of_dead_lettering_every_record() -> None:
    from preflog.processors.entry import stream_time_key
    from preflog.processors.exceptions import StateError

    from ..conftest import inference
    from .join_harness import INF, Harness

    h = Harness()
    h.table[stream_time_key(0)] = b"\x01\x00"  # truncated
    with pytest.raises(StateError, match="unreadable stream time"):
        h.send(INF, inference(), partition=0)
