"""The compiled reader (arrow-avro) writes the files the codec's dicts write, or leaves the batch to the other paths.

Every comparison is of Parquet bytes against records the codec decoded (``codec.decode`` + ``from_pylist``), never
against the code under test.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from preflog.schemas.exceptions import DecodeError
from preflog.schemas.tables import OUTPUTS, TABLES
from preflog.schemas.varint import avro_long
from preflog.sinks.arrow_rows import ArrowRows
from preflog.sinks.columns import ColumnRows, DictRows
from preflog.sinks.parquet import encode

from .test_sink_columns import CODEC, FORMATS, SAMPLES, assert_same_files, dict_rows, values_of

ROLES = [o.role for o in OUTPUTS]
LIMITS = (CODEC.max_record_bytes, CODEC.max_string_bytes, CODEC.max_items)


def compiled(role: str, values: list[bytes]) -> Any:
    reader = FORMATS[role].decoder.compiled
    assert reader is not None  # every table of today's schemas is decoded in compiled code
    return reader.read(values, *LIMITS)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("partition_by", [[], ["model.name"], ["reason", "source_offset.partition", "nothing.here"]])
def test_the_compiled_path_writes_the_files_the_dict_path_writes(role: str, partition_by: list[str]) -> None:
    fmt, values = FORMATS[role], values_of(role, 120)
    fast = fmt.decoder.decode(values, CODEC, "t")
    assert isinstance(fast, ArrowRows)  # the compiled reader took every record
    slow = dict_rows(role, values)
    assert fast.ids(TABLES[role].id_column) == slow.ids(TABLES[role].id_column)
    assert_same_files(role, fast, slow, partition_by)


def _mutated(value: bytes, rng: random.Random) -> bytes:
    body = bytearray(value)
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(10, len(body))
        op = rng.random()
        if op < 0.6:
            body[at] = rng.randrange(256)
        elif op < 0.8:
            body.insert(at, rng.randrange(256))
        else:
            del body[at]
    return bytes(body)


def differential(seed: int, per_value: int) -> tuple[int, int]:
    """Changed, inserted and deleted bytes in valid bodies of every table; returns (bodies tried, bodies taken).

    The compiled reader takes a body only if the codec decodes it to the same row.
    """
    rng, tried, taken = random.Random(seed), 0, 0
    for role in ROLES:
        fmt, name = FORMATS[role], TABLES[role].record
        for value in values_of(role, 40, seed=seed):
            for _ in range(per_value):
                body = _mutated(value, rng)
                tried += 1
                table = compiled(role, [body])
                if table is None:
                    continue
                taken += 1
                try:
                    record = CODEC.decode(body, name)
                except DecodeError as exc:
                    raise AssertionError(f"the compiled reader took a {name} body the codec refuses: {exc}") from None
                assert encode(ArrowRows(table).table(fmt.arrow)) == encode(DictRows([record]).table(fmt.arrow)), name
    return tried, taken


def test_whatever_the_compiled_reader_takes_the_codec_decodes_to_the_same_row() -> None:
    tried, taken = differential(seed=5, per_value=25)
    assert tried == 5000
    assert taken > 500  # changes in text still decode; the rest is left to the codec


@pytest.mark.heavy
@pytest.mark.parametrize("seed", range(12))
def test_the_differential_test_at_72_000_bodies(seed: int) -> None:
    tried, _ = differential(seed=100 + seed, per_value=30)
    assert tried == 6000


def _bool_at(role: str) -> int:
    """The position of the ``explicit`` flag in a sample body (the one byte two encodings differ in)."""
    record = SAMPLES[TABLES[role].record]
    on, off = (CODEC.encode(TABLES[role].record, {**record, "explicit": flag}) for flag in (True, False))
    (at,) = [i for i in range(len(on)) if on[i] != off[i]]
    return at


def _cases() -> dict[str, bytes]:
    pair = dict(SAMPLES["PreferencePair"])
    good = CODEC.encode("PreferencePair", pair)
    twin = CODEC.encode("PreferencePair", {**pair, "inference_metadata": {"ab": "1", "cd": "2"}})
    flag = _bool_at("pairs")
    null = CODEC.encode("PreferencePair", {**pair, "rationale": None, "tools": None})
    return {
        "a trailing byte": good + b"\x00",
        "a whole record trailing": good + good[10:],
        "cut short": good[:-1],
        "a map repeating a key (fastavro keeps the last)": twin.replace(b"\x04cd", b"\x04ab"),
        "a boolean byte of 2": good[:flag] + b"\x02" + good[flag + 1 :],
        "a padded varint": good[:10] + good[10:11].replace(b"\x48", b"\xc8\x00") + good[11:],
        "an old framing byte": b"\x00" + good[1:],
        "another schema's fingerprint": good[:2] + bytes(8) + good[10:],
        "a union index of 55": null.replace(b"\x00\x00", b"\x6e\x00", 1) if b"\x00\x00" in null else b"",
        "empty": b"",
    }


@pytest.mark.parametrize("what", list(_cases()))
def test_a_body_it_is_not_sure_of_leaves_the_batch_to_the_other_paths(what: str) -> None:
    good, bad = CODEC.encode("PreferencePair", SAMPLES["PreferencePair"]), _cases()[what]
    assert compiled("pairs", [good, bad]) is None
    assert compiled("pairs", [bad, good]) is None
    try:
        expected: Any = [CODEC.decode(v, "PreferencePair") for v in (good, bad)]
    except DecodeError as exc:
        expected = type(exc)
    try:
        rows = FORMATS["pairs"].decoder.decode([good, bad], CODEC, "t")
        assert not isinstance(rows, ArrowRows)
        got: Any = encode(rows.table(FORMATS["pairs"].arrow))
        expected = encode(DictRows(expected).table(FORMATS["pairs"].arrow))
    except DecodeError as exc:
        got = type(exc)
    assert got == expected, what


def test_a_timestamp_fastavro_cannot_hold_leaves_the_batch_to_the_codec() -> None:
    from datetime import datetime, timezone

    pair = dict(SAMPLES["PreferencePair"])
    when = datetime(5000, 1, 2, tzinfo=timezone.utc)  # its varint is as long as year 10000's
    body = CODEC.encode("PreferencePair", {**pair, "feedback_time": when})
    old, new = avro_long(int(when.timestamp() * 1000)), avro_long(253_402_300_800_000)  # year 10000
    assert body.count(old) == 1 and len(old) == len(new)
    far = body.replace(old, new)
    assert compiled("pairs", [far]) is None
    with pytest.raises(DecodeError):
        FORMATS["pairs"].decoder.decode([far], CODEC, "t")


def test_a_batch_of_many_values_is_one_compiled_read_and_the_column_path_still_serves() -> None:
    values = values_of("pairs", 300, seed=9)
    table = compiled("pairs", values)
    assert table is not None and table.num_rows == 300
    assert isinstance(FORMATS["pairs"].decoder.columns(values, CODEC), ColumnRows)
    assert compiled("pairs", []) is None


def test_varint_sizes_are_the_bytes_a_zigzag_varint_takes() -> None:
    import numpy as np

    from preflog.sinks.avro_sizes import _varint_sizes

    rng = random.Random(1)
    edges = [0, 1, -1, 63, 64, -64, -65, 8191, 8192, 2**31 - 1, -(2**31), 2**62, 2**63 - 1, -(2**63)]
    values = edges + [rng.randrange(-(2**63), 2**63) for _ in range(500)] + [rng.randrange(1 << 40) for _ in range(500)]
    expected = [len(avro_long(v)) for v in values]  # the encoder's own bytes, counted
    assert _varint_sizes(np.array(values, dtype=np.int64)).tolist() == expected
    assert [int(_varint_sizes(np.array([v], dtype=np.int64))[0]) for v in edges] == expected[: len(edges)]
