"""A log written before schema version 2 (every file, or some) reads, builds, exports and reports as one of v2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import preflog
from preflog.dataset.build import build
from preflog.dataset.select import Selection
from preflog.report.build import report
from preflog.schemas.registry import default_store
from preflog.sinks.arrow import arrow_schema, to_table
from preflog.sinks.export import export_rows
from preflog.sinks.naming import file_name
from preflog.sinks.parquet import encode
from preflog.sinks.scan import connect, log_view
from preflog.sinks.storage import Storage

from .dataset_helpers import rows

TOOL_CALL = [{"role": "assistant", "content": "", "tool_calls": [{"id": "c", "name": "f", "arguments": "{}"}]}]


def _file(root: Path, version: int, first: int, n: int, day: int) -> list[dict[str, Any]]:
    """``n`` pairs written with PreferencePair version ``version`` (its schema's columns only)."""
    schema_version = default_store().versions("PreferencePair")[version - 1]
    records = rows([(f"question {i}", f"yes {i}", f"no {i}", "END_USER") for i in range(first, first + n)], first=first)
    if version == 1:
        records = [{k: v for k, v in r.items() if k not in ("conversation", "tools")} for r in records]
    else:
        for r in records:
            r["chosen_messages"] = TOOL_CALL
    table = to_table(records, arrow_schema(schema_version.raw))
    name = file_name("preflog.pairs.v1", 0, first, first + n - 1)
    Storage(f"file://{root}").put(f"pairs/dt=2026-11-0{day}/{name}", encode(table))
    return records


@pytest.mark.parametrize("mixed", [False, True])
def test_an_older_log_reads_builds_exports_and_reports(tmp_path: Path, mixed: bool) -> None:
    root = tmp_path / "log"
    _file(root, 1, 0, 30, 1)
    if mixed:
        _file(root, 2, 30, 10, 2)
    url = f"file://{root}"
    n = 40 if mixed else 30
    table = preflog.read_pairs(url)
    assert table.num_rows == n and table.column("conversation").null_count == n
    messages = table.column("chosen_messages").to_pylist()
    assert all(m is None for m in messages[:30])
    if mixed:  # the v2 file's nested fields survive the older files read first
        assert messages[30][0]["tool_calls"] == [{"id": "c", "name": "f", "arguments": "{}"}]
    con = connect()
    try:
        log_view(con, "p", url, "pairs")
        got = con.execute("SELECT count(*), count(tools), count(chosen_messages[1].tool_calls) FROM p").fetchone()
    finally:
        con.close()
    assert got == (n, 0, 10 if mixed else 0)
    m = build(url, tmp_path / "ds", "v1", Selection(test_fraction=0.0))
    assert m["pairs_selected"] == n
    lines = [json.loads(x) for x in (tmp_path / "ds" / "v1" / "trl" / "train.jsonl").open()]
    assert sorted(line["prompt"] for line in lines) == sorted(f"question {i}" for i in range(n))
    exported = list(export_rows(table, "trl"))
    assert len(exported) == n
    report(url, tmp_path / "report", Selection(), rounds=5)
    assert (tmp_path / "report" / "report.html").exists()


def test_the_newest_schema_adds_nothing_to_a_log_of_its_own_version(tmp_path: Path) -> None:
    _file(tmp_path, 2, 0, 5, 1)
    con = connect()
    try:
        log_view(con, "p", f"file://{tmp_path}", "pairs")
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE temporary").fetchall()}
    finally:
        con.close()
    assert "p__older" not in views and pa is not None
