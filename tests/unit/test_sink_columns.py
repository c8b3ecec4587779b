"""The sink's column decoder writes the files the dict path (codec + ``to_table``) writes, or leaves the batch to it.

The dict path is what the sink did before, and what replay still does: records decoded by the codec into dicts, then
``pyarrow.Table.from_pylist``. Every comparison is of Parquet bytes, so schema, metadata and values are all covered.
"""

from __future__ import annotations

import io
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest

from preflog.schemas.codec import SingleObjectCodec
from preflog.schemas.exceptions import DecodeError
from preflog.schemas.registry import default_store
from preflog.schemas.tables import OUTPUTS, TABLES
from preflog.sinks.batch import TableFormat, batch_files
from preflog.sinks.columns import ColumnRows, DictRows, Rows
from preflog.sinks.parquet import encode

from ..samples import all_samples

CODEC = SingleObjectCodec()
SAMPLES = all_samples()
FORMATS = {o.role: TableFormat(o.role, default_store().latest(o.record)) for o in OUTPUTS}
TEXTS = ["", "a", "déjà vu ✓", "模型", "🙂" * 3, "x" * 70, "long " * 2000]  # lengths of 1, 2 and 3 varint bytes
DAY0 = datetime(2026, 11, 1, 23, 59, 59, 999_000, tzinfo=timezone.utc)
WHEN = [
    DAY0,
    DAY0 + timedelta(milliseconds=1),
    datetime(1969, 12, 31, 23, 0, tzinfo=timezone.utc),
    datetime(1, 1, 1, tzinfo=timezone.utc),
]


def _model(rng: random.Random) -> dict[str, Any]:
    return {
        "name": rng.choice(["acme-chat", "acme/mini 2"]),
        "version": rng.choice([None, "v1"]),
        "checkpoint_hash": None,
    }


def _messages(rng: random.Random) -> list[dict[str, str]] | None:
    return rng.choice([None, [], [{"role": "user", "content": rng.choice(TEXTS)}] * rng.randint(1, 3)])


def _metadata(rng: random.Random) -> dict[str, str]:
    return {f"k{i}": rng.choice(TEXTS) for i in range(rng.choice([0, 1, 3]))}


def varied(role: str, rng: random.Random) -> dict[str, Any]:
    """A valid record of ``role``'s table with random optional parts, edge values and times."""
    record = dict(SAMPLES[TABLES[role].record])
    time = TABLES[role].time_column
    record[time] = rng.choice(WHEN)
    record[TABLES[role].id_column] = f"id-{rng.randrange(10**9)}"
    if role in ("pairs", "unpaired"):
        record["feedback_kind"] = rng.choice(["PAIRWISE", "RANKING", "SCORES", "RATING", "IMPLICIT"])
        record["prompt"] = rng.choice(TEXTS)
        record["prompt_messages"] = _messages(rng)
        record["model"] = _model(rng)
        record["sampling"] = {
            **record["sampling"],
            "top_k": rng.choice([None, -(2**31), 2**31 - 1]),
            "seed": rng.choice([None, 0, -(2**63), 2**63 - 1]),
            "temperature": rng.choice([None, 0.1, -1e300]),
            "extra": _metadata(rng),
        }
        record["source"] = {**record["source"], "type": rng.choice(["HUMAN_ANNOTATOR", "REWARD_MODEL", "AI_CRITIC"])}
        record["explicit"] = rng.random() < 0.5
    if role == "pairs":
        record["chosen_messages"] = _messages(rng)
        record["chosen_model"] = rng.choice([None, _model(rng)])
        record["rejected_model"] = rng.choice([None, _model(rng)])
        record["chosen_score"] = rng.choice([None, 0.5, float("inf")])
        record["rationale"] = rng.choice([None, *TEXTS])
        record["join_latency_ms"] = rng.choice([0, -1, 2**40])
        record["feedback_metadata"] = _metadata(rng)
    if role == "unpaired":
        record["value"] = rng.choice([None, 3.25])
        record["completion_model"] = rng.choice([None, _model(rng)])
    if role == "unmatched":
        record["reason"] = rng.choice(["NO_FEEDBACK", "LATE", "UNKNOWN"])
        record["feedback_id"] = rng.choice([None, "f"])
        record["value"] = rng.choice([b"", b"\x00\xff" * 40])
        record["inference_offset"] = rng.choice([None, SAMPLES["UnmatchedRecord"]["source_offset"]])
    if role == "dead_letter":
        record["key"] = rng.choice([None, b"", b"k"])
        record["inference_offset"] = rng.choice([None, SAMPLES["DeadLetter"]["source_offset"]])
    return record


def values_of(role: str, n: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    return [CODEC.encode(TABLES[role].record, varied(role, rng)) for _ in range(n)]


def dict_rows(role: str, values: list[bytes]) -> DictRows:
    return DictRows([CODEC.decode(v, TABLES[role].record) for v in values])


def data_files(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return [(path, data) for path, data in files if path.endswith(".parquet") and not path.startswith("_manifests/")]


def assert_same_files(role: str, fast: Rows, slow: DictRows, partition_by: list[str]) -> None:
    """``fast`` and the dict path's ``slow`` give the same folders and the same files, whole and after takes."""
    keep = [i for i in range(len(slow)) if i % 3]  # as when duplicates are skipped
    pairs = [
        (fast, slow),
        (fast.take(keep), slow.take(keep)),
        (fast.take(keep).take([5, 1]), slow.take(keep).take([5, 1])),
    ]
    for a, b in pairs:
        assert a.dirs(role, partition_by) == b.dirs(role, partition_by)
        ours, theirs = (batch_files(FORMATS[role], rows, "t", 0, 0, 119, partition_by) for rows in (a, b))
        assert data_files(ours) == data_files(theirs)
        assert [p for p, _ in ours] == [p for p, _ in theirs]


@pytest.mark.parametrize("role", [o.role for o in OUTPUTS])
@pytest.mark.parametrize("partition_by", [[], ["model.name"], ["reason", "source_offset.partition", "nothing.here"]])
def test_the_column_path_writes_the_files_the_dict_path_writes(role: str, partition_by: list[str]) -> None:
    fmt, values = FORMATS[role], values_of(role, 120)
    fast = fmt.decoder.columns(values, CODEC)
    assert isinstance(fast, ColumnRows)  # the column decoder took every record
    slow = dict_rows(role, values)
    assert fast.ids(TABLES[role].id_column) == slow.ids(TABLES[role].id_column)
    assert_same_files(role, fast, slow, partition_by)
    assert len(data_files(batch_files(fmt, fast, "t", 0, 0, 119, partition_by))) > 1  # several dt= folders


def test_replay_s_dicts_write_the_same_files_as_before() -> None:
    """batch_files still takes dicts (replay): grouped by folder, each group through to_table."""
    fmt, records = FORMATS["pairs"], dict_rows("pairs", values_of("pairs", 30)).records
    files = data_files(batch_files(fmt, records, "t", 0, 0, 29, []))
    assert {path.split("/")[1] for path, _ in files} == {
        "dt=2026-11-01",
        "dt=2026-11-02",
        "dt=1969-12-31",
        "dt=0001-01-01",
    }
    column = fmt.decoder.decode(values_of("pairs", 30), CODEC, "t")
    assert files == data_files(batch_files(fmt, column, "t", 0, 0, 29, []))


def test_the_column_tables_equal_from_pylist_tables() -> None:
    fmt, values = FORMATS["pairs"], values_of("pairs", 200, seed=3)
    fast = fmt.decoder.decode(values, CODEC, "t").table(fmt.arrow)
    slow = dict_rows("pairs", values).table(fmt.arrow)
    assert fast.equals(slow, check_metadata=True)
    assert encode(fast) == encode(slow)


def _body_with(role: str, record: dict[str, Any]) -> bytes:
    return CODEC.encode(TABLES[role].record, record)


def test_what_the_column_decoder_does_not_take_goes_to_the_codec() -> None:
    pair = dict(SAMPLES["PreferencePair"])
    good = _body_with("pairs", pair)
    twin = _body_with("pairs", {**pair, "inference_metadata": {"ab": "1", "cd": "2"}})
    cases = {
        "a map repeating a key (fastavro keeps the last)": twin.replace(b"\x04cd", b"\x04ab"),
        "an old framing byte": b"\x00" + good[1:],
        "a padded varint": good[:10] + good[10:11].replace(b"\x48", b"\xc8\x00") + good[11:],
    }
    fmt = FORMATS["pairs"]
    for what, value in cases.items():
        assert fmt.decoder.columns([good, value], CODEC) is None, what
        try:
            expected: Any = [CODEC.decode(v, "PreferencePair") for v in (good, value)]
        except DecodeError as exc:
            expected = type(exc)
        try:
            got: Any = fmt.decoder.decode([good, value], CODEC, "t")
            assert isinstance(got, DictRows), what
            got = got.records
        except DecodeError as exc:
            got = type(exc)
        assert got == expected, what
    assert fmt.decoder.decode([twin.replace(b"\x04cd", b"\x04ab")], CODEC, "t").ids("pair_id") == [pair["pair_id"]]


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


@pytest.mark.parametrize("what", ["trailing byte", "cut short", "bad utf-8", "year 10000", "enum index 9", "union 3"])
def test_a_record_the_codec_refuses_still_raises_its_decode_error(what: str) -> None:
    when = datetime(2031, 1, 2, 3, 4, 5, 678_000, tzinfo=timezone.utc)
    body = _body_with("pairs", {**SAMPLES["PreferencePair"], "rationale": "zz", "feedback_time": when})
    at, kind = body.index(b"\x04zz"), 10 + 3 * 37  # the header, then three uuids (length byte + 36)
    ms = _zigzag(int(when.timestamp() * 1000))
    assert body.count(ms) == 1
    bad = {
        "trailing byte": body + b"\x00",
        "cut short": body[:-3],
        "bad utf-8": body[:at] + b"\x04\xff\xfe" + body[at + 3 :],
        "year 10000": body.replace(ms, _zigzag(253_402_300_800_000)),
        "enum index 9": body[:kind] + b"\x12" + body[kind + 1 :],
        "union 3": body[: at - 1] + b"\x06" + body[at:],
    }[what]
    with pytest.raises(DecodeError):
        CODEC.decode(bad, "PreferencePair")
    assert FORMATS["pairs"].decoder.columns([body], CODEC) is not None
    assert FORMATS["pairs"].decoder.columns([body, bad], CODEC) is None
    with pytest.raises(DecodeError):
        FORMATS["pairs"].decoder.decode([body, bad], CODEC, "t")


def test_whatever_the_column_decoder_takes_the_codec_decodes_to_the_same_values() -> None:
    """Random byte changes to valid bodies: the column decoder takes a body only if the codec gives the same row."""
    fmt, rng = FORMATS["pairs"], random.Random(11)
    schema, taken = fmt.arrow, 0
    for value in values_of("pairs", 40, seed=5):
        for _ in range(40):
            body = bytearray(value)
            for _ in range(rng.randint(1, 3)):
                body[rng.randrange(10, len(body))] = rng.randrange(256)
            rows = fmt.decoder.columns([bytes(body)], CODEC)
            if rows is None:
                continue
            taken += 1
            expected = DictRows([CODEC.decode(bytes(body), "PreferencePair")]).table(schema)  # must not raise
            assert encode(rows.table(schema)) == encode(expected)  # bytes: a NaN is not equal to itself
    assert taken > 100  # most changes land in text and still decode


def test_other_framings_and_earlier_schema_versions_go_to_the_codec() -> None:
    from preflog.schemas.codec import SOE_MAGIC, ConfluentCodec

    confluent = ConfluentCodec("mock://sink-columns")
    value = confluent.encode("PreferencePair", SAMPLES["PreferencePair"], "t")
    assert FORMATS["pairs"].decoder.columns([value], confluent) is None
    assert isinstance(FORMATS["pairs"].decoder.decode([value], confluent, "t"), DictRows)
    first = default_store().versions("DeadLetter")[0]
    assert first.fingerprint != FORMATS["dead_letter"].schema.fingerprint
    buf = io.BytesIO()
    record = {k: v for k, v in SAMPLES["DeadLetter"].items() if k != "dead_letter_id"}
    fastavro.schemaless_writer(buf, first.parsed, record)
    old = SOE_MAGIC + first.fingerprint + buf.getvalue()
    new = CODEC.encode("DeadLetter", SAMPLES["DeadLetter"])
    rows = FORMATS["dead_letter"].decoder.decode([new, old], CODEC, "t")
    assert isinstance(rows, DictRows)
    assert rows.ids("dead_letter_id") == [SAMPLES["DeadLetter"]["dead_letter_id"], ""]
