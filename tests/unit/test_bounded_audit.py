"""verify and export read the log in bounded memory, with the numbers and bytes the in-memory versions gave.

The oracles are the in-memory paths themselves: a ``Counter`` of every id (what verify kept before) and
``write_jsonl(export_rows(read_pairs(...)))`` (what export wrote before), on the seeded adversarial log
(repeated ids, stray copies, a copy sorting first, rows without ids).
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from preflog.cli import app
from preflog.schemas.tables import TABLES
from preflog.sinks.export import FORMATS, export_rows, write_jsonl
from preflog.sinks.filtered import Filters, iter_filtered
from preflog.sinks.manifest import Manifest, manifest_path
from preflog.sinks.naming import file_name, parse_file_name
from preflog.sinks.parquet import encode
from preflog.sinks.read import read_pairs, read_table
from preflog.sinks.storage import Storage
from preflog.sinks.verify import verify

from .adversarial_log import adversarial_log


def _with_manifests(root: Path) -> Storage:
    """A manifest for every data file of the log under ``root`` (the adversarial log writes none)."""
    storage = Storage(f"file://{root}")
    for path in sorted(root.rglob("*.parquet")):
        relative = str(path.relative_to(root))
        name = parse_file_name(relative)
        assert name is not None
        data = path.read_bytes()
        rows = pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
        manifest = Manifest(relative, relative.split("/")[0], name.topic, name.partition, name.first, name.last,
                            rows, 0, Manifest.digest(data), "x", "00", "2026-11-01T00:00:00+00:00")  # fmt: skip
        storage.put(manifest_path(relative), manifest.to_json())
    return storage


def _counted(root: Path) -> dict[str, int]:
    """What verify reported before: per table, every non-empty id in a Counter, the copies after the first."""
    out = {}
    for table in TABLES:
        ids: Counter[str] = Counter()
        for path in sorted((root / table).rglob("*.parquet")) if (root / table).exists() else []:
            ids.update(i for i in pq.read_table(path, columns=[TABLES[table].id_column]).column(0).to_pylist() if i)
        if repeated := sum(n - 1 for n in ids.values() if n > 1):
            out[table] = repeated
    return out


def test_verify_counts_repeated_ids_on_disk_as_the_counter_did(tmp_path: Path) -> None:
    root = tmp_path / "log"
    adversarial_log(root)
    third = read_table(f"file://{root}", "pairs").slice(100, 5)  # a third copy of ids the stray copy repeats
    name = file_name("preflog.pairs.v1", 0, 70_000, 70_004)
    Storage(f"file://{root}").put(f"pairs/dt=2026-11-05/{name}", encode(third.drop_columns(["dt"])))
    storage = _with_manifests(root)
    expected = _counted(root)
    assert expected["pairs"] > 60 and expected["unpaired"] > 20  # copies, third copies; blank ids are left out
    report = verify(storage, memory="128MB")
    assert report.duplicate_ids == expected
    assert report.files == len(list(root.rglob("*.parquet")))
    assert report.rows == sum(pq.read_metadata(p).num_rows for p in root.rglob("*.parquet"))
    assert not report.ok and not report.checksum_mismatches and not report.without_manifest


FILTERS = [
    [],
    ["--start", "2026-11-01"],  # the copies that sort first are outside it: the originals are exported
    ["--source", "human_annotator", "--model", "acme-chat"],
    ["--end", "2026-11-01", "--source", "END_USER", "--source", "REWARD_MODEL"],
]


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("flags", FILTERS, ids=["all", "start", "source-model", "end-sources"])
def test_export_writes_the_bytes_the_in_memory_export_wrote(tmp_path: Path, fmt: str, flags: list[str]) -> None:
    url = adversarial_log(tmp_path / "log")
    values: dict[str, list[str]] = {flag: [] for flag in ("--start", "--end", "--model", "--source")}
    for flag, value in zip(flags[::2], flags[1::2], strict=True):
        values[flag].append(value)
    start, end = (values[f][0] if values[f] else None for f in ("--start", "--end"))
    rows = read_pairs(url, start, end, values["--model"] or None, values["--source"] or None, table=FORMATS[fmt][0])
    assert rows.num_rows > 0 or fmt == "kto"  # the signals are all from one source
    before = tmp_path / "before.jsonl"
    write_jsonl(export_rows(rows, fmt), str(before))
    after = tmp_path / "after.jsonl"
    args = ["export", str(after), "--format", fmt, "--url", url, "--memory-limit", "128MB", *flags]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert after.read_bytes() == before.read_bytes()
    if fmt == "openai":
        beside = tmp_path / "before.provenance.jsonl"
        write_jsonl(export_rows(rows, fmt, beside=True), str(beside))
        assert (tmp_path / "after.provenance.jsonl").read_bytes() == beside.read_bytes()


@pytest.mark.parametrize("dt", ["2026-10-01", "2026-11-30"])
def test_iter_filtered_reads_a_file_of_an_older_schema_as_read_pairs_does(tmp_path: Path, dt: str) -> None:
    """A file without some columns (written before they existed): the scanner's path, as read_pairs reads it.

    Sorting first or last, its missing columns are nulls: both read with the newest schema, never the first
    file's (which left the other files' extra columns out).
    """
    root = tmp_path / "log"
    url = adversarial_log(root)
    old = read_table(url, "pairs").slice(0, 50).drop_columns(["dt", "rationale", "join_latency_ms"])
    name = file_name("preflog.pairs.v1", 0, 80_000, 80_049)
    Storage(url).put(f"pairs/dt={dt}/{name}", encode(old))
    for filters in (Filters(), Filters(start="2026-11-01"), Filters(sources=["HUMAN_ANNOTATOR"], models=["acme-mini"])):
        expected = read_pairs(url, filters.start, filters.end, filters.models, filters.sources)
        batches = list(iter_filtered(url, "pairs", filters, batch_rows=33, limit="128MB"))
        assert pa.Table.from_batches(batches).to_pylist() == expected.to_pylist()
    table = read_pairs(url)
    assert "rationale" in table.column_names and table.column("rationale").null_count >= 50


def test_an_export_of_an_empty_table_writes_an_empty_file(tmp_path: Path) -> None:
    root = tmp_path / "log"
    (root / "pairs").mkdir(parents=True)
    out = tmp_path / "x.jsonl"
    result = CliRunner().invoke(app, ["export", str(out), "--url", f"file://{root}", "--start", "2026-11-01"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == b"" and "the pairs table is empty" in result.output


def test_a_bad_memory_limit_is_a_usage_error(tmp_path: Path) -> None:
    url = adversarial_log(tmp_path / "log")
    for command in (["verify", url], ["export", str(tmp_path / "x.jsonl"), "--url", url]):
        result = CliRunner().invoke(app, [*command, "--memory-limit", "lots"])
        assert result.exit_code == 2 and "memory limit" in result.output
