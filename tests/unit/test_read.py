"""Reading the audit log back: one row per id, in a stable order, whatever copies lie around."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

import preflog
from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.naming import file_name
from preflog.sinks.parquet import encode
from preflog.sinks.read import dedupe
from preflog.sinks.storage import Storage

from ..samples import all_samples

SAMPLE = all_samples()["PreferencePair"]
ids = st.lists(st.sampled_from([f"id-{i}" for i in range(12)]), max_size=60)


def _expected(values: list[str]) -> list[int]:
    """Row numbers of the first occurrence of each id, in row order (computed the plain way)."""
    seen: set[str] = set()
    keep = []
    for row, value in enumerate(values):
        if value not in seen:
            seen.add(value)
            keep.append(row)
    return keep


@given(ids)
@settings(max_examples=300, deadline=None)
def test_dedupe_keeps_the_first_row_of_each_id_in_row_order(values: list[str]) -> None:
    table = pa.table({"id": values, "row": list(range(len(values)))})
    out = dedupe(table, "id")
    assert out.column("row").to_pylist() == _expected(values)
    assert sorted(set(out.column("id").to_pylist())) == sorted(set(values))


@given(st.lists(st.uuids().map(str), unique=True, max_size=50))
@settings(max_examples=100, deadline=None)
def test_dedupe_without_repeats_changes_nothing(values: list[str]) -> None:
    table = pa.table({"id": values, "row": list(range(len(values)))})
    assert dedupe(table, "id").equals(table)


def test_dedupe_the_case_from_the_issue() -> None:
    table = pa.table({"id": ["a", "b", "a", "c", "d"], "row": [0, 1, 2, 3, 4]})
    assert dedupe(table, "id").to_pydict() == {"id": ["a", "b", "c", "d"], "row": [0, 1, 3, 4]}


def _pairs(first: int, n: int) -> bytes:
    rows = [{**SAMPLE, "pair_id": f"00000000-0000-4000-8000-{i:012d}"} for i in range(first, first + n)]
    return encode(to_table(rows, arrow_schema(default_store().latest("PreferencePair").raw)))


def _log(root: Path, files: int = 6, rows: int = 50) -> list[str]:
    storage = Storage(f"file://{root}")
    written = []
    for f in range(files):
        day = f"2026-11-0{f % 3 + 1}"
        relative = f"pairs/dt={day}/{file_name('preflog.pairs.v1', f % 2, f * rows, f * rows + rows - 1)}"
        storage.put(relative, _pairs(f * rows, rows))
        written.append(relative)
    return written


def _ids(root: Path, **kw: Any) -> list[str]:
    return list(preflog.read_pairs(f"file://{root}", **kw).column("pair_id").to_pylist())


def test_a_stray_copy_of_a_data_file_neither_loses_nor_doubles_pairs(tmp_path: Path) -> None:
    written = _log(tmp_path)
    before = _ids(tmp_path)
    assert len(before) == len(set(before)) == 300
    source = tmp_path / written[2]
    shutil.copy(source, source.with_name("copy of " + source.name))  # not a preflog name: left out
    shutil.copy(source, tmp_path / "pairs" / "dt=2026-11-01" / source.name)  # same name, other folder: deduped
    after = _ids(tmp_path)
    assert len(after) == len(set(after)) == 300
    assert sorted(after) == sorted(before)


def test_reads_are_reproducible_byte_for_byte_in_path_then_row_order(tmp_path: Path) -> None:
    written = _log(tmp_path, files=12, rows=40)
    digests = {hashlib.sha256(json.dumps(_ids(tmp_path, start="2026-11-02")).encode()).hexdigest() for _ in range(6)}
    assert len(digests) == 1
    first_rows = [int(path.rsplit("+", 1)[1].split("-")[0]) for path in sorted(written)]
    expected = [f"00000000-0000-4000-8000-{i:012d}" for first in first_rows for i in range(first, first + 40)]
    assert _ids(tmp_path) == expected


def test_an_empty_table_reads_as_zero_rows_with_the_schema(tmp_path: Path) -> None:
    (tmp_path / "pairs").mkdir()
    table = preflog.read_pairs(f"file://{tmp_path}")
    assert table.num_rows == 0 and "pair_id" in table.column_names


def test_dedupe_never_merges_rows_without_an_id() -> None:
    """Unmatched and dead-letter files written before those tables had ids hold empty ids: each row is its own."""
    table = pa.table({"id": ["a", "", "a", None, "", "b"], "row": [0, 1, 2, 3, 4, 5]})
    assert dedupe(table, "id").column("row").to_pylist() == [0, 1, 3, 4, 5]
