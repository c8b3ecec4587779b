"""verify and export read the log in bounded memory, with the numbers and bytes the in-memory versions gave.

The oracles are the in-memory paths themselves: a ``Counter`` of every id (what verify kept before) and
``write_jsonl(export_rows(read_pairs(...)))`` (what export wrote before), on the seeded adversarial log
(repeated ids, stray copies, a copy sorting first, rows without ids).
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from preflog.cli import app
from preflog.schemas.tables import TABLES
from preflog.sinks.manifest import Manifest, manifest_path
from preflog.sinks.naming import file_name, parse_file_name
from preflog.sinks.parquet import encode
from preflog.sinks.read import read_table
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
    report = verify(storage, memory="64MB")
    assert report.duplicate_ids == expected
    assert report.files == len(list(root.rglob("*.parquet")))
    assert report.rows == sum(pq.read_metadata(p).num_rows for p in root.rglob("*.parquet"))
    assert not report.ok and not report.checksum_mismatches and not report.without_manifest


def test_a_bad_memory_limit_is_a_usage_error(tmp_path: Path) -> None:
    url = adversarial_log(tmp_path / "log")
    for command in (["verify", url],):
        result = CliRunner().invoke(app, [*command, "--memory-limit", "lots"])
        assert result.exit_code == 2 and "memory limit" in result.output
