"""The audit log's files: Arrow/Parquet shape, names, immutable storage, verify and export layouts."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.exceptions import ImmutableFileError, StorageError
from preflog.sinks.export import FORMATS, export_rows
from preflog.sinks.manifest import Manifest, manifest_path
from preflog.sinks.naming import file_name, parse_file_name, partition_dir
from preflog.sinks.parquet import encode
from preflog.sinks.storage import Storage
from preflog.sinks.verify import verify

from ..samples import all_samples

SAMPLES = all_samples()


def pair_table(n: int = 3) -> Any:
    rows = [{**SAMPLES["PreferencePair"], "pair_id": f"00000000-0000-4000-8000-{i:012d}"} for i in range(n)]
    return to_table(rows, arrow_schema(default_store().latest("PreferencePair").raw))


def test_parquet_is_zstd_with_ms_utc_timestamps_and_docs(tmp_path: Path) -> None:
    data = encode(pair_table())
    parquet = pq.ParquetFile(io.BytesIO(data))
    column = parquet.metadata.row_group(0).column(0)
    assert column.compression == "ZSTD"
    assert "RLE_DICTIONARY" in column.encodings or "PLAIN_DICTIONARY" in column.encodings
    schema = parquet.schema_arrow
    assert str(schema.field("feedback_time").type) == "timestamp[ms, tz=UTC]"
    assert schema.field("chosen").metadata[b"doc"] == b"The preferred output."
    (path := tmp_path / "x.parquet").write_bytes(data)
    (row,) = duckdb.execute(f"select chosen, model.name, source.type, feedback_time from '{path}' limit 1").fetchall()
    assert row[:3] == ("7", "acme-chat", "HUMAN_ANNOTATOR")
    assert row[3].year == 2026  # a real timestamp, not nanoseconds read as something else


def test_values_survive_the_round_trip() -> None:
    back = pq.read_table(io.BytesIO(encode(pair_table(1)))).to_pylist()[0]
    sample = SAMPLES["PreferencePair"]
    for key in ("chosen", "rejected", "chosen_score", "margin", "model", "inference_offset", "feedback_time"):
        assert back[key] == sample[key], key
    assert dict(back["inference_metadata"]) == sample["inference_metadata"]


def test_file_names_round_trip_and_sort_by_offset() -> None:
    name = file_name("preflog.pairs.v1", 3, 42, 99)
    assert name == "preflog.pairs.v1+3+0000000000000000042-0000000000000000099.parquet"
    parsed = parse_file_name(f"pairs/dt=2026-11-01/{name}")
    assert parsed is not None and (parsed.topic, parsed.partition, parsed.first, parsed.last) == (
        "preflog.pairs.v1",
        3,
        42,
        99,
    )
    assert parse_file_name("pairs/dt=2026-11-01/notes.txt") is None


def test_partition_dir_uses_event_date_and_extra_columns() -> None:
    record = {**SAMPLES["PreferencePair"], "model": {"name": "acme/chat v2"}}
    assert partition_dir("pairs", record, ["model.name"]) == "pairs/dt=2026-11-01/model_name=acme%2Fchat%20v2"


def test_storage_creates_exclusively_and_never_overwrites(tmp_path: Path) -> None:
    storage = Storage(f"file://{tmp_path}")
    assert storage.put("t/a.bin", b"one") is True
    assert storage.put("t/a.bin", b"one") is False  # same bytes: skipped
    with pytest.raises(ImmutableFileError, match="immutable"):
        storage.put("t/a.bin", b"two")
    assert storage.read("t/a.bin") == b"one"
    assert list(storage.list("t")) == ["t/a.bin"]  # no temp files left


def test_a_crash_mid_write_leaves_nothing_readers_trip_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sink killed between writing its temp file and linking it leaves a hidden temp file only."""
    import os

    import preflog

    storage = Storage(f"file://{tmp_path}")
    _write(storage, 0, 2)
    monkeypatch.setattr(os, "unlink", lambda path: None)  # the process dies: no cleanup

    def crash(src: str, dst: str) -> None:
        raise OSError("killed")

    monkeypatch.setattr(os, "link", crash)
    with pytest.raises(StorageError):
        storage.put(f"pairs/dt=2026-11-01/{file_name('preflog.pairs.v1', 0, 3, 5)}", encode(pair_table(3)))
    monkeypatch.undo()
    leftovers = [p for p in (tmp_path / "pairs").rglob("*") if ".tmp-" in p.name]
    assert leftovers and all(p.name.startswith(".") for p in leftovers)
    assert preflog.read_pairs(f"file://{tmp_path}").num_rows == 3
    assert not any(".tmp-" in p for p in storage.list("pairs"))


def _write(storage: Storage, first: int, last: int, rows: int = 3) -> str:
    data = encode(pair_table(rows))
    relative = f"pairs/dt=2026-11-01/{file_name('preflog.pairs.v1', 0, first, last)}"
    storage.put(relative, data)
    manifest = Manifest(
        relative,
        "pairs",
        "preflog.pairs.v1",
        0,
        first,
        last,
        rows,
        0,
        Manifest.digest(data),
        "PreferencePair",
        "00",
        "2026-11-01T00:00:00+00:00",
    )
    storage.put(manifest_path(relative), manifest.to_json())
    return relative


def test_verify_passes_a_clean_log_and_catches_tampering_deletion_gaps_and_duplicates(tmp_path: Path) -> None:
    storage = Storage(f"file://{tmp_path}")
    first = _write(storage, 0, 9)
    assert verify(storage).ok
    second = _write(storage, 10, 19)
    report = verify(storage)
    assert report.duplicate_ids == {"pairs": 3}  # both files hold the same three pair_ids
    assert report.gaps == [] and report.files == 2
    third = _write(storage, 25, 30)
    assert verify(storage).gaps == ["pairs: preflog.pairs.v1[0] offsets 20-24 are in no file"]
    (tmp_path / second).write_bytes((tmp_path / second).read_bytes()[:-10] + b"0123456789")
    assert verify(storage).checksum_mismatches == [second]
    (tmp_path / third).unlink()
    assert verify(storage).missing_files == [third]
    assert not verify(storage).ok
    assert (tmp_path / first).exists()


def test_verify_clean(tmp_path: Path) -> None:
    storage = Storage(f"file://{tmp_path}")
    _write(storage, 0, 9)
    report = verify(storage)
    assert report.ok and report.rows == 3


EXPECTED_KEYS = {
    "trl": ["prompt", "chosen", "rejected"],
    "trl-conversational": ["prompt", "chosen", "rejected"],
    "openai": ["input", "preferred_output", "non_preferred_output"],
}


@pytest.mark.parametrize("fmt", sorted(EXPECTED_KEYS))
def test_pair_export_layouts(fmt: str) -> None:
    (row,) = list(export_rows(pair_table(1), fmt))
    assert list(row)[:3] == EXPECTED_KEYS[fmt]
    json.dumps(row)
    if fmt != "openai":  # provenance after the trainer's columns; OpenAI's goes to a file beside
        assert {"pair_id", "request_id", "feedback_id", "model", "source", "kind", "margin"} <= set(row)
    else:
        assert len(row) == 3
        (beside,) = list(export_rows(pair_table(1), fmt, beside=True))
        assert beside["pair_id"] == pair_table(1).column("pair_id")[0].as_py()
    if fmt == "trl":
        own = {k: row[k] for k in EXPECTED_KEYS[fmt]}
        assert own == {"prompt": "Name a prime number.", "chosen": "7", "rejected": "9"}
    elif fmt == "trl-conversational":
        assert row["prompt"] == [{"role": "user", "content": "Name a prime number."}]
        assert row["chosen"] == [{"role": "assistant", "content": "7"}]
        assert row["rejected"] == [{"role": "assistant", "content": "9"}]
    else:
        assert row["input"] == {"messages": [{"role": "user", "content": "Name a prime number."}]}
        assert row["preferred_output"] == [{"role": "assistant", "content": "7"}]
        assert row["non_preferred_output"] == [{"role": "assistant", "content": "9"}]


def test_kto_export_layout() -> None:
    table = to_table([SAMPLES["UnpairedSignal"]], arrow_schema(default_store().latest("UnpairedSignal").raw))
    assert FORMATS["kto"][0] == "unpaired"
    (row,) = list(export_rows(table, "kto"))
    assert {k: row[k] for k in ("prompt", "completion", "label")} == {
        "prompt": "Name a prime number.", "completion": "7", "label": True
    }
    assert row["signal_id"] == SAMPLES["UnpairedSignal"]["signal_id"] and row["kind"] == "RATING"


def test_verify_and_export_commands(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from preflog.cli import app

    storage = Storage(f"file://{tmp_path}/audit")
    relative = _write(storage, 0, 9)
    runner = CliRunner()
    url = f"file://{tmp_path}/audit"
    result = runner.invoke(app, ["verify", url])
    assert result.exit_code == 0 and "OK" in result.output, result.output
    out = tmp_path / "train.jsonl"
    result = runner.invoke(app, ["export", str(out), "--format", "trl", "--url", url, "--start", "2026-11-01"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3 and list(lines[0])[:3] == ["prompt", "chosen", "rejected"]
    assert (lines[0]["prompt"], lines[0]["chosen"], lines[0]["rejected"]) == ("Name a prime number.", "7", "9")
    result = runner.invoke(app, ["export", str(out), "--format", "trl", "--url", url, "--start", "2026-11-02"])
    assert result.exit_code == 0 and out.read_text() == ""  # partition pruning: nothing after Nov 1
    (tmp_path / "audit" / relative).write_bytes(b"PAR1 tampered")
    result = runner.invoke(app, ["verify", url])
    assert result.exit_code == 1 and "checksum mismatch (altered file): pairs/dt=2026-11-01" in result.output


def test_verify_and_export_of_a_missing_log_fail_with_one_line_instead_of_ok_or_a_traceback(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from preflog.cli import app

    missing = f"file://{tmp_path / 'typo'}"
    runner = CliRunner()
    verified = runner.invoke(app, ["verify", missing])
    assert verified.exit_code != 0 and "OK" not in verified.output
    assert "no audit log at" in str(verified.exception)
    exported = runner.invoke(app, ["export", str(tmp_path / "x.jsonl"), "--url", missing])
    assert exported.exit_code != 0 and "no pairs table" in str(exported.exception)
    bad_date = runner.invoke(app, ["export", str(tmp_path / "x.jsonl"), "--url", missing, "--start", "11/01/2026"])
    assert bad_date.exit_code == 2 and "YYYY-MM-DD" in bad_date.output
    _write(Storage(f"file://{tmp_path / 'log'}"), 0, 9)
    assert runner.invoke(app, ["verify", f"file://{tmp_path / 'log'}"]).exit_code == 0


def test_an_export_that_matches_nothing_says_what_the_log_holds(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from preflog.cli import app

    root = f"file://{tmp_path / 'log'}"
    _write(Storage(root), 0, 9)
    model = pq.read_table(next((tmp_path / "log").rglob("*.parquet"))).column("model").to_pylist()[0]["name"]
    result = CliRunner().invoke(app, ["export", str(tmp_path / "x.jsonl"), "--url", root, "--model", "nosuchmodel"])
    assert result.exit_code == 0, result.output
    assert "wrote 0 trl rows" in result.output and "no row matched the filters" in result.output
    assert f"models {model}" in result.output and "2026-11-01" in result.output
