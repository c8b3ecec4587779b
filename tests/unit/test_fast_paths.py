"""The join's fast paths give what the checked paths give: decoding, validation and ids."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preflog.processors.admission import _validated
from preflog.processors.join import JoinConfig, Joiner
from preflog.processors.pairs import NAMESPACE, uuid5_text
from preflog.producers.generator import TrafficProfile, generate
from preflog.schemas.codec import Codec, ConfluentCodec, SingleObjectCodec
from preflog.schemas.events import feedback_record, inference_record
from preflog.schemas.exceptions import DecodeError, ValidationError
from preflog.schemas.references import FEEDBACK_KINDS, PAYLOAD_FIELD, reference_problems, references_fine

FAST = SingleObjectCodec()
CHECKED = SingleObjectCodec()
CHECKED._fast_reader = lambda writer, reader: None  # type: ignore[method-assign]


def _values() -> list[tuple[str, bytes]]:
    out = []
    for e in generate(TrafficProfile(requests=150, invalid=0.0, seed=3)):
        if e.record is not None:
            name = "InferenceEvent" if e.event_type == "inference" else "FeedbackEvent"
            record = inference_record(e.record) if name == "InferenceEvent" else feedback_record(e.record)
            out.append((name, FAST.encode(name, record)))
    return out


VALUES = _values()


def _outcome(codec: SingleObjectCodec, value: bytes, name: str) -> Any:
    try:
        return repr(codec.decode(value, name))
    except DecodeError as exc:
        return f"DecodeError: {exc}"


def test_the_fast_reader_decodes_what_fastavro_decodes_and_marks_each_field() -> None:
    for name, value in VALUES:
        record, marks = FAST.decode_marked(value, name)
        schema = FAST.store.latest(name).reader
        assert repr(record) == repr(fastavro.schemaless_reader(io.BytesIO(value[10:]), schema, None))
        assert marks is not None and marks[0][-1] == len(value) - 10
        assert len(marks[0]) == len(record) + 1


def test_a_non_canonical_encoding_takes_the_checked_path_with_the_same_record() -> None:
    name, value = next((n, v) for n, v in VALUES if n == "FeedbackEvent")
    body = value[10:]
    # the first field's length (36, one byte 0x48) written as a two-byte varint: valid Avro, not minimal
    forged = value[:10] + b"\xc8\x00" + body[1:]
    record, marks = FAST.decode_marked(forged, name)
    assert marks is None
    assert record == FAST.decode(value, name)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_corruption_decodes_or_fails_exactly_as_the_checked_path(data: st.DataObject) -> None:
    name, value = data.draw(st.sampled_from(VALUES))
    body = bytearray(value)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(10, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(10, len(body)))
    corrupt = bytes(body[:cut])
    assert _outcome(FAST, corrupt, name) == _outcome(CHECKED, corrupt, name)


def test_validation_of_a_clean_record_is_the_full_validation() -> None:
    for name, value in VALUES:
        admitted = _validated(FAST, name, value, "t")
        full = (inference_record if name == "InferenceEvent" else feedback_record)(
            FAST.decode(value, name), check_schema=False
        )
        turn = name == "InferenceEvent" and full.get("conversation") is not None  # checked in full, by design
        assert (admitted.decoded is admitted.record) is not turn
        assert repr(admitted.record) == repr(full)


def test_a_record_the_fast_check_does_not_pass_gets_the_full_validation() -> None:
    name, value = next((n, v) for n, v in VALUES if n == "InferenceEvent")
    record = FAST.decode(value, name)
    upper = FAST.encode(
        name, {**record, "request_id": record["request_id"].upper(), "prompt": "", "prompt_messages": None}
    )
    try:
        _validated(FAST, name, upper, "t")
    except ValidationError as exc:
        assert "prompt" in str(exc)
    else:
        raise AssertionError("an empty prompt passed")
    canonical = FAST.encode(name, {**record, "request_id": record["request_id"].upper()})
    admitted = _validated(FAST, name, canonical, "t")
    assert admitted.decoded is None and admitted.record["request_id"] == record["request_id"]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_ids_are_uuid5_byte_for_byte(name: str) -> None:
    try:
        expected = str(uuid.uuid5(NAMESPACE, name))
    except UnicodeEncodeError:
        return
    assert uuid5_text(name) == expected


@pytest.mark.parametrize(("framing", "feedback_first"), [("soe", False), ("soe", True), ("confluent", True)])
def test_spliced_outputs_are_the_records_encoded_byte_for_byte(framing: str, feedback_first: bool) -> None:
    codec: Codec = FAST if framing == "soe" else ConfluentCodec(f"mock://splice-{feedback_first}")
    values = [(name, codec.encode(name, FAST.decode(value, name), "t")) for name, value in VALUES]
    joiner = Joiner(
        JoinConfig(), codec, {}, "i", "f", wall_ms=lambda: 10**13, output_topics={"pairs": "p", "unpaired": "u"}
    )
    spliced: Counter[str] = Counter()
    real_pair, real_signal = joiner.splicer.pair, joiner.signals.signal

    def pair(*args: Any) -> bytes:
        spliced["pairs"] += 1
        return real_pair(*args)

    def signal(*args: Any) -> bytes:
        spliced["unpaired"] += 1
        return real_signal(*args)

    joiner.splicer.pair = pair  # type: ignore[method-assign,assignment]
    joiner.signals.signal = signal  # type: ignore[method-assign,assignment]
    offsets = {"i": 0, "f": 0}
    outputs = []
    order = sorted(values, key=lambda v: v[0] == "InferenceEvent") if feedback_first else values
    for name, value in order:  # feedback first: every feedback waits, and is joined when its inference comes
        topic = "i" if name == "InferenceEvent" else "f"
        key = codec.decode(value, name, topic)["request_id"].encode()
        offsets[topic] += 1
        outputs += [e for e in joiner.process(topic, 0, offsets[topic], key, value) if e.role in ("pairs", "unpaired")]
    made = Counter(e.role for e in outputs)
    assert made["unpaired"] > 0
    assert spliced["pairs"] > made["pairs"] / 2 and spliced["unpaired"] > made["unpaired"] / 2
    for e in outputs:
        name, topic = ("PreferencePair", "p") if e.role == "pairs" else ("UnpairedSignal", "u")
        assert e.value == codec.encode(name, e.record, topic)


_ANY = st.one_of(st.none(), st.booleans(), st.integers(-2, 7), st.floats(allow_nan=True), st.text(max_size=2))
_INDEX = st.one_of(st.integers(-1, 6), st.integers(0, 5), _ANY)
_ENTRY = st.one_of(
    st.fixed_dictionaries({"index": _INDEX, "rank": st.integers(1, 3)}),
    st.fixed_dictionaries({"index": _INDEX, "score": st.one_of(st.floats(-2, 2), st.sampled_from([1e308, -1e308]))}),
    st.fixed_dictionaries({"index": _INDEX}, optional={"rank": _ANY, "score": _ANY}),
)
_PAYLOADS = {
    "PAIRWISE": st.fixed_dictionaries({"chosen": _INDEX, "rejected": _INDEX}),
    "RATING": st.fixed_dictionaries({"index": _INDEX}, optional={"value": st.one_of(st.floats(), _ANY)}),
    "RANKING": st.lists(_ENTRY, max_size=5),
}
_PAYLOADS.update(IMPLICIT=_PAYLOADS["RATING"], SCORES=_PAYLOADS["RANKING"])


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from([*FEEDBACK_KINDS, "OTHER", None]), st.data(), st.one_of(st.none(), st.integers(0, 6)))
def test_the_quick_reference_check_says_yes_only_when_the_full_one_finds_nothing(
    kind: Any, data: st.DataObject, count: int | None
) -> None:
    payload = data.draw(st.one_of(_PAYLOADS.get(kind, _ANY), *_PAYLOADS.values(), _ANY))
    fields = {f: None for f in PAYLOAD_FIELD.values()}
    feedback = {"kind": kind, **fields, **({PAYLOAD_FIELD[kind]: payload} if kind in PAYLOAD_FIELD else {})}
    if references_fine(feedback, count):
        assert reference_problems(feedback, count) == []


def test_the_quick_reference_check_says_yes_to_generated_feedback() -> None:
    feedback = [FAST.decode(value, name) for name, value in VALUES if name == "FeedbackEvent"]
    assert {f["kind"] for f in feedback} == set(FEEDBACK_KINDS)
    for f in feedback:
        assert references_fine(f, None) and references_fine(f, 8)
        assert reference_problems(f, None) == reference_problems(f, 8) == []
