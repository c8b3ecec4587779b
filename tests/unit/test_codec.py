"""Encoding and decoding: both framings, every schema, schema evolution, and garbage."""

from __future__ import annotations

import contextlib
import json
import shutil
import struct
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from hypothesis import given, settings
from hypothesis import strategies as st

from preflog.schemas.codec import ConfluentCodec, SingleObjectCodec
from preflog.schemas.exceptions import DecodeError
from preflog.schemas.registry import DEFAULT_SCHEMA_DIR, SchemaStore, default_store
from preflog.schemas.tables import RECORD_TYPES

from ..samples import all_samples

SAMPLES = all_samples()

# CRC-64-AVRO exactly as the Avro specification writes it, to check fastavro's fingerprints independently.
EMPTY = 0xC15D213AA4D7A795
TABLE = []
for _i in range(256):
    _fp = _i
    for _ in range(8):
        _fp = (_fp >> 1) ^ (EMPTY if _fp & 1 else 0)
    TABLE.append(_fp)


def spec_fingerprint(data: bytes) -> int:
    fp = EMPTY
    for byte in data:
        fp = (fp >> 8) ^ TABLE[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize("name", RECORD_TYPES)
def test_single_object_round_trip(name: str) -> None:
    codec = SingleObjectCodec()
    data = codec.encode(name, SAMPLES[name], "t")
    assert data[:2] == b"\xc3\x01"
    canonical = default_store().latest(name).canonical.encode()
    assert data[2:10] == struct.pack("<Q", spec_fingerprint(canonical))
    assert codec.decode(data, name, "t") == SAMPLES[name]
    assert codec.encode(name, SAMPLES[name], "t") == data


@pytest.mark.parametrize("name", RECORD_TYPES)
def test_confluent_round_trip(name: str) -> None:
    registry = SchemaRegistryClient.new_client({"url": "mock://test-" + name})
    codec = ConfluentCodec(registry)
    data = codec.encode(name, SAMPLES[name], "topic-a")
    schema_id = struct.unpack(">I", data[1:5])[0]
    assert data[0] == 0
    assert registry.get_latest_version("topic-a-value").schema_id == schema_id
    assert json.loads(registry.get_schema(schema_id).schema_str or "")["name"] == name
    # a fresh codec on the same registry decodes it from the schema id alone
    assert ConfluentCodec(registry).decode(data, name, "topic-a") == SAMPLES[name]


def test_confluent_unknown_schema_id_is_a_decode_error() -> None:
    codec = ConfluentCodec(SchemaRegistryClient.new_client({"url": "mock://empty"}))
    with pytest.raises(DecodeError, match="schema id 999 not found"):
        codec.decode(b"\x00" + struct.pack(">I", 999) + b"\x02", "InferenceEvent", "t")


def test_framings_are_told_apart_with_the_fix() -> None:
    soe, confluent = SingleObjectCodec(), ConfluentCodec("mock://framings")
    with pytest.raises(DecodeError, match="set framing=confluent"):
        soe.decode(confluent.encode("InferenceEvent", SAMPLES["InferenceEvent"], "t"), "InferenceEvent", "t")
    with pytest.raises(DecodeError, match="set framing=single-object"):
        confluent.decode(soe.encode("InferenceEvent", SAMPLES["InferenceEvent"], "t"), "InferenceEvent", "t")


GOOD = SingleObjectCodec().encode("InferenceEvent", SAMPLES["InferenceEvent"], "t")


@pytest.mark.parametrize(
    ("data", "expected", "message"),
    [
        (b"", "InferenceEvent", "not Avro single-object"),
        (b"hello world, not avro", "InferenceEvent", "not Avro single-object"),
        (b"\xc3\x01" + b"\xff" * 8 + b"\x00", "InferenceEvent", "is not any version"),
        (GOOD[:25], "InferenceEvent", "does not decode as InferenceEvent"),
        (GOOD + b"\x00\x00", "InferenceEvent", "2 trailing bytes"),
        (GOOD, "FeedbackEvent", "is a InferenceEvent"),
        (GOOD[:10] + b"\xff" * 40, "InferenceEvent", "does not decode"),
    ],
    ids=["empty", "text", "unknown-fingerprint", "truncated", "trailing", "wrong-type", "corrupt-body"],
)
def test_garbage_is_one_clear_error(data: bytes, expected: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        SingleObjectCodec().decode(data, expected, "t")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(RECORD_TYPES))
def test_any_bytes_decode_or_raise_decode_error(data: bytes, name: str) -> None:
    with contextlib.suppress(DecodeError):
        SingleObjectCodec().decode(b"\xc3\x01" + default_store().latest(name).fingerprint + data, name, "t")


V2_FIELD = {"name": "language", "type": ["null", "string"], "default": None, "doc": "BCP-47 language of the prompt."}


@pytest.fixture
def evolved_store(tmp_path: Path) -> tuple[SchemaStore, SchemaStore]:
    """A v1-only schema folder and the same folder plus an InferenceEvent v2 with a new optional field."""
    old = tmp_path / "old"
    shutil.copytree(DEFAULT_SCHEMA_DIR, old)
    new = tmp_path / "new"
    shutil.copytree(DEFAULT_SCHEMA_DIR, new)
    latest = max(int(p.stem) for p in (new / "InferenceEvent").glob("*.avsc"))
    schema = json.loads((new / "InferenceEvent" / f"{latest}.avsc").read_text())
    schema["fields"].append(V2_FIELD)
    (new / "InferenceEvent" / f"{latest + 1}.avsc").write_text(json.dumps(schema))
    return SchemaStore(old), SchemaStore(new)


def test_v1_records_decode_with_a_v2_reader(evolved_store: tuple[SchemaStore, SchemaStore]) -> None:
    old, new = evolved_store
    data = SingleObjectCodec(old).encode("InferenceEvent", SAMPLES["InferenceEvent"], "t")
    decoded = SingleObjectCodec(new).decode(data, "InferenceEvent", "t")
    assert decoded == {**SAMPLES["InferenceEvent"], "language": None}
    assert new.latest("InferenceEvent").version == old.latest("InferenceEvent").version + 1


def test_v2_records_carry_the_new_field(evolved_store: tuple[SchemaStore, SchemaStore]) -> None:
    old, new = evolved_store
    codec = SingleObjectCodec(new)
    data = codec.encode("InferenceEvent", {**SAMPLES["InferenceEvent"], "language": "en"}, "t")
    assert data[2:10] == new.latest("InferenceEvent").fingerprint != old.latest("InferenceEvent").fingerprint
    assert codec.decode(data, "InferenceEvent", "t")["language"] == "en"
    with pytest.raises(DecodeError, match="upgrade preflog"):
        SingleObjectCodec(old).decode(data, "InferenceEvent", "t")


def test_v1_records_decode_with_a_v2_reader_over_confluent(evolved_store: tuple[SchemaStore, SchemaStore]) -> None:
    old, new = evolved_store
    registry = SchemaRegistryClient.new_client({"url": "mock://evolution"})
    data = ConfluentCodec(registry, old).encode("InferenceEvent", SAMPLES["InferenceEvent"], "t")
    assert ConfluentCodec(registry, new).decode(data, "InferenceEvent", "t")["language"] is None


@pytest.mark.parametrize("name", RECORD_TYPES)
def test_every_shipped_version_is_readable_by_the_newest(name: str) -> None:
    """BACKWARD compatibility of the shipped history: old writers, newest reader."""
    store = default_store()
    for version in store.versions(name):
        single = SchemaStore.__new__(SchemaStore)
        single.__dict__.update(store.__dict__)
        single._versions = {**store._versions, name: [version]}
        data = SingleObjectCodec(single).encode(name, SAMPLES[name], "t")
        assert SingleObjectCodec(store).decode(data, name, "t")
