"""Strict decoding: bytes fastavro would accept but no Avro writer produces are a DecodeError naming the field.

Each body is built by hand, field by field, from a FeedbackEvent whose layout
the test spells out, so a case changes exactly one field's bytes.
"""

from __future__ import annotations

import io
import re
import struct
from dataclasses import dataclass, field

import fastavro
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from hypothesis import given, settings
from hypothesis import strategies as st

from preflog.schemas.codec import DEFAULT_MAX_RECORD_BYTES, ConfluentCodec, SingleObjectCodec
from preflog.schemas.exceptions import DecodeError
from preflog.schemas.registry import default_store
from preflog.schemas.shape import shape_problems
from preflog.schemas.strict import BodyError, compile_checker

from ..samples import all_samples

SAMPLES = all_samples()
CODEC = SingleObjectCodec()

FID = "8c3f9a57-3b53-4f3e-9d7a-0f1b5b1c2d3e"
RID = "0b0f6c1e-52a4-4cbb-8f0f-3f4b8f6f9d11"
T_MS = 1_793_534_400_000  # 2026-11-01T12:00:00Z


def zz(n: int) -> bytes:
    """Avro's zigzag varint of any Python int (no 64-bit limit, so tests can forge wider ones)."""
    z = n << 1 if n >= 0 else ((-n) << 1) - 1
    out = bytearray()
    while True:
        low, z = z & 0x7F, z >> 7
        out.append(low | 0x80 if z else low)
        if not z:
            return bytes(out)


def text(raw: bytes) -> bytes:
    return zz(len(raw)) + raw


@dataclass
class Feedback:
    """The raw bytes of each field of a PAIRWISE FeedbackEvent, in schema order."""

    feedback_id: bytes = text(FID.encode())
    request_id: bytes = text(RID.encode())
    event_time: bytes = zz(T_MS)
    kind: bytes = zz(0)  # PAIRWISE
    pairwise: bytes = zz(1) + zz(1) + zz(0)  # branch 1, chosen 1, rejected 0
    ranking: bytes = zz(0)
    scores: bytes = zz(0)
    rating: bytes = zz(0)
    implicit: bytes = zz(0)
    source: bytes = zz(1) + zz(1) + text(b"u-1") + zz(0) + zz(0)  # END_USER, id u-1
    explicit: bytes = b"\x01"
    rationale: bytes = zz(1) + text(b"clearer")
    metadata: bytes = field(default=zz(1) + text(b"k") + text(b"v") + zz(0))

    def body(self) -> bytes:
        return b"".join(self.__dict__.values())


FINGERPRINT = default_store().latest("FeedbackEvent").fingerprint


def soe(body: bytes) -> bytes:
    return b"\xc3\x01" + FINGERPRINT + body


def test_the_hand_built_body_is_a_valid_feedback_event() -> None:
    record = SingleObjectCodec().decode(soe(Feedback().body()), "FeedbackEvent", "t")
    assert record["pairwise"] == {"chosen": 1, "rejected": 0}
    assert record["source"]["type"] == "END_USER" and record["metadata"] == {"k": "v"}
    assert int(record["event_time"].timestamp() * 1000) == T_MS


@dataclass(frozen=True)
class Case:
    name: str
    fields: dict[str, bytes]
    field: str  # the field the message must name
    message: str


CASES = [
    Case("int beyond 32 bits", {"pairwise": zz(1) + zz(2**31) + zz(0)}, "pairwise.chosen", "does not fit an Avro int"),
    Case("int below int32", {"pairwise": zz(1) + zz(0) + zz(-(2**31) - 1)}, "pairwise.rejected", "fit an Avro int"),
    Case("int beyond 64 bits", {"pairwise": zz(1) + zz(2**64) + zz(0)}, "pairwise.chosen", "longer than 5 bytes"),
    Case("long beyond 64 bits", {"event_time": zz(2**70)}, "event_time", "longer than 10 bytes"),
    Case("long of 2**64", {"event_time": zz(2**64)}, "event_time", "does not fit an Avro long"),
    Case("long of 2**63", {"event_time": zz(2**63)}, "event_time", "does not fit an Avro long"),
    Case("negative enum index", {"kind": zz(-1)}, "kind", "enum index -1 is not a symbol"),
    Case("enum index past the symbols", {"kind": zz(5)}, "kind", "enum index 5 is not a symbol"),
    Case(
        "negative enum index in a nested record",
        {"source": zz(-1) + zz(0) + zz(0) + zz(0)},
        "source.type",
        "enum index -1",
    ),
    Case("negative union index", {"rationale": zz(-1) + text(b"x")}, "rationale", "union branch index -1"),
    Case("union index past the branches", {"rating": zz(2)}, "rating", "union branch index 2 out of range"),
    Case("boolean byte 2", {"explicit": b"\x02"}, "explicit", "boolean byte 2"),
    Case("invalid UTF-8", {"rationale": zz(1) + text(b"\xff\xfe")}, "rationale", "not valid UTF-8"),
    Case("UTF-8 of a surrogate", {"rationale": zz(1) + text(b"\xed\xa0\x80")}, "rationale", "not valid UTF-8"),
    Case(
        "invalid UTF-8 in a map key",
        {"metadata": zz(1) + text(b"\xc3") + text(b"v") + zz(0)},
        "metadata[0].key",
        "UTF-8",
    ),
    Case("negative string length", {"feedback_id": zz(-5)}, "feedback_id", "negative string length -5"),
    Case("forged string length", {"rationale": zz(1) + zz(2**40)}, "rationale", "longer than the limit"),
    Case("forged map count", {"metadata": zz(2**40)}, "metadata", "more than the limit"),
    Case(
        "map count beyond the bytes left",
        {"metadata": zz(5000) + text(b"k") + text(b"v") + zz(0)},
        "metadata",
        "5000 entries claimed but only",
    ),
    Case("negative block size", {"metadata": zz(-1) + zz(-3) + text(b"k") + text(b"v") + zz(0)}, "metadata", "size"),
    Case("timestamp past year 9999", {"event_time": zz(253_402_300_800_000)}, "event_time", "years 1..9999"),
    Case("timestamp before year 1", {"event_time": zz(-62_135_596_800_001)}, "event_time", "years 1..9999"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_strict_decoding_names_the_field(case: Case) -> None:
    body = Feedback(**case.fields).body()
    with pytest.raises(DecodeError) as info:
        SingleObjectCodec().decode(soe(body), "FeedbackEvent", "preflog.feedback.v1")
    message = str(info.value)
    assert f"field {case.field}" in message and case.message in message, message
    assert message.startswith("record on preflog.feedback.v1: ")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_strict_decoding_over_confluent_framing(case: Case) -> None:
    registry = SchemaRegistryClient.new_client({"url": "mock://strict"})
    codec = ConfluentCodec(registry)
    good = codec.encode(
        "FeedbackEvent", codec.decode(soe_to_confluent(codec, Feedback().body()), "FeedbackEvent", "t"), "t"
    )
    assert codec.decode(good, "FeedbackEvent", "t")["kind"] == "PAIRWISE"
    with pytest.raises(DecodeError, match=rf"field {re.escape(case.field)}\b.*{re.escape(case.message)}"):
        codec.decode(good[:5] + Feedback(**case.fields).body(), "FeedbackEvent", "t")


def soe_to_confluent(codec: ConfluentCodec, body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", codec._schema_id("FeedbackEvent", "t")) + body


def test_fastavro_alone_accepts_what_strict_decoding_refuses() -> None:
    """Why the pre-pass exists: without it these decode to valid-looking records (if fastavro changes, revisit)."""
    writer = default_store().latest("FeedbackEvent").reader
    for fields in ({"kind": zz(-1)}, {"rationale": zz(-1) + text(b"x")}, {"event_time": zz(2**64 + 5)}):
        record = fastavro.schemaless_reader(io.BytesIO(Feedback(**fields).body()), writer, None)
        assert isinstance(record, dict)


def test_limits_are_constructor_parameters() -> None:
    body = Feedback(rationale=zz(1) + text(b"x" * 100)).body()
    assert SingleObjectCodec().max_record_bytes == DEFAULT_MAX_RECORD_BYTES == 1 << 20
    with pytest.raises(DecodeError, match=rf"{len(body)}-byte FeedbackEvent body is larger than the limit of 200"):
        SingleObjectCodec(max_record_bytes=200).decode(soe(body), "FeedbackEvent", "t")
    with pytest.raises(DecodeError, match="field rationale: string of 100 bytes is longer than the limit of 99"):
        SingleObjectCodec(max_string_bytes=99).decode(soe(body), "FeedbackEvent", "t")
    assert SingleObjectCodec(max_string_bytes=100).decode(soe(body), "FeedbackEvent", "t")["rationale"] == "x" * 100
    many = Feedback(metadata=zz(3) + b"".join(text(k) + text(b"v") for k in (b"a", b"b", b"c")) + zz(0)).body()
    with pytest.raises(DecodeError, match="field metadata: 3 entries, more than the limit of 2"):
        SingleObjectCodec(max_items=2).decode(soe(many), "FeedbackEvent", "t")
    with pytest.raises(ValueError, match="max_items must be a positive integer"):
        SingleObjectCodec(max_items=0)


def test_items_are_counted_across_blocks() -> None:
    """An array may come in several blocks (a count, its items, another count...); the limit is on the total."""
    one = text(b"k") + text(b"v")
    two_blocks = Feedback(metadata=zz(2) + one + one + zz(-1) + zz(len(one)) + one + zz(0)).body()
    assert SingleObjectCodec(max_items=3).decode(soe(two_blocks), "FeedbackEvent", "t")["metadata"] == {"k": "v"}
    with pytest.raises(DecodeError, match="3 entries, more than the limit of 2"):
        SingleObjectCodec(max_items=2).decode(soe(two_blocks), "FeedbackEvent", "t")


def test_zero_size_items_cannot_make_the_reader_build_a_huge_list() -> None:
    """fastavro would build a list of 2**40 Nones from 7 bytes; the pre-pass refuses the count first."""
    schema = fastavro.parse_schema(
        {"type": "record", "name": "R", "fields": [{"name": "nulls", "type": {"type": "array", "items": "null"}}]}
    )
    check = compile_checker(schema)
    assert check(zz(3) + zz(0), 100, 100) == 2
    with pytest.raises(Exception, match="nulls: 1099511627776 entries, more than the limit of 100"):
        check(zz(2**40) + zz(0), 100, 100)


def test_truncated_and_trailing_bodies() -> None:
    body = Feedback().body()
    with pytest.raises(DecodeError, match="does not decode as FeedbackEvent: it ends early"):
        SingleObjectCodec().decode(soe(body[:-3]), "FeedbackEvent", "t")
    with pytest.raises(DecodeError, match="1 trailing bytes after the FeedbackEvent body"):
        SingleObjectCodec().decode(soe(body + b"\x00"), "FeedbackEvent", "t")


def test_nan_and_infinite_doubles_are_valid_avro() -> None:
    """NaN is a valid Avro double, so decoding keeps it; validation (events.py) refuses NaN scores."""
    rating = zz(1) + zz(0) + b"\x01" + zz(1) + struct.pack("<d", float("nan")) + zz(0)
    body = Feedback(kind=zz(3), pairwise=zz(0), rating=rating).body()
    value = SingleObjectCodec().decode(soe(body), "FeedbackEvent", "t")["rating"]["value"]
    assert value != value  # NaN


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["InferenceEvent", "FeedbackEvent"]), st.data())
def test_a_corrupted_body_is_a_decode_error_or_a_record_that_fits_its_schema(name: str, data: st.DataObject) -> None:
    """Change or insert bytes in a valid body: whatever still decodes fits the schema and can be written again.

    A robustness property (random edits rarely forge exactly a wide int; the hand-built cases above do that).
    """
    codec = CODEC
    good = bytearray(codec.encode(name, SAMPLES[name]))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(10, len(good) - 1))
        if data.draw(st.booleans()):
            good[at] = data.draw(st.integers(0, 255))
        else:
            good.insert(at, data.draw(st.integers(0, 255)))
    try:
        record = codec.decode(bytes(good), name, "t")
    except DecodeError:
        return
    problems = [p for p in shape_problems(record, default_store().latest(name).reader) if "finite" not in p]
    assert problems == []
    codec.encode(name, record)  # and the join can write what it read


@pytest.mark.parametrize(
    ("kind", "value", "ok"),
    [
        ("int", 2**31 - 1, True),
        ("int", -(2**31), True),
        ("int", 2**31, False),
        ("int", -(2**31) - 1, False),
        ("int", 2**20, True),  # three bytes
        ("long", 2**63 - 1, True),
        ("long", -(2**63), True),
        ("long", 2**63, False),
        ("long", -(2**63) - 1, False),
        ("long", 2**40, True),
    ],
)
def test_the_widest_ints_and_longs_pass_and_one_more_does_not(kind: str, value: int, ok: bool) -> None:
    schema = fastavro.parse_schema({"type": "record", "name": "R", "fields": [{"name": "n", "type": kind}]})
    body = zz(value) + zz(7)
    check = compile_checker(
        fastavro.parse_schema(
            {"type": "record", "name": "R2", "fields": [{"name": "n", "type": kind}, {"name": "m", "type": "int"}]}
        )
    )
    if ok:
        assert check(body, 10, 10) == len(body)
        assert fastavro.schemaless_reader(io.BytesIO(zz(value)), schema, None) == {"n": value}
    else:
        with pytest.raises(BodyError, match=r"n: .*(does not fit|longer than)"):
            check(body, 10, 10)
