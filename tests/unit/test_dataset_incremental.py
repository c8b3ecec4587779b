"""``build --since``: only the files added since are read, and the result is the full build's, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import preflog.dataset.build as build_module
from preflog.dataset.build import BuildError, build
from preflog.dataset.catalog import verify
from preflog.dataset.select import Selection

from .dataset_helpers import PAIRS, ranking, rows, signal, write_table

SELECTION = Selection(test_fraction=0.2, validation_fraction=0.1, seed=7)


def _outputs(m: dict[str, Any]) -> dict[str, str]:
    return {f["path"]: f["sha256"] for f in m["files"] if f["path"] != "README.md"}


def _grow(log: Path) -> None:
    """New files: more pairs, a ranking, signals, and a stray copy of pairs the first file already has."""
    write_table(log, "pairs", rows(PAIRS[:5]), first=1000)  # the same pair_ids as offsets 0..4: copies
    write_table(log, "pairs", rows([(f"later {i}?", "a", "b", "END_USER") for i in range(20)], first=2000))
    write_table(log, "pairs", ranking(5, "Rank later.", ["a", "b", "c"], [1, 1, 2]), first=3000)
    write_table(log, "unpaired", [signal(i, f"later {i}?", "a", 0, i % 2 == 0) for i in range(6)], first=100)


def test_an_incremental_build_equals_a_full_one_and_reads_only_the_new_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "log"
    write_table(log, "pairs", rows(PAIRS))
    url = write_table(log, "unpaired", [signal(i, f"q {i}?", "a", 0, True) for i in range(4)])
    first = build(url, tmp_path / "ds", "first", SELECTION)
    _grow(log)
    read: list[list[str]] = []
    real = build_module.read_table

    def spy(url: str, table: str, **kw: Any) -> Any:
        read.append(list(kw["files"]))
        return real(url, table, **kw)

    monkeypatch.setattr(build_module, "read_table", spy)
    later = build(url, tmp_path / "ds", "later", SELECTION, since="first")
    monkeypatch.undo()
    old = {s["path"] for s in first["sources"]}
    assert read and not any(p in old for files in read for p in files)  # nothing the first build read
    assert sum(len(files) for files in read) == 4  # the four new files
    full = build(url, tmp_path / "ds", "full", SELECTION)
    assert later["content_hash"] == full["content_hash"]
    assert _outputs(later) == _outputs(full)  # every file, the selected rows too
    assert later["sources"] == full["sources"] and later["watermark"] == full["watermark"]
    assert later["rows"] == full["rows"] and later["records"] == full["records"]
    assert later["pairs_selected"] == len(PAIRS) + 20 + 2  # the copies counted once
    assert verify(tmp_path / "ds", "later").ok
    # and again on top of the incremental one
    write_table(log, "pairs", rows([(f"last {i}?", "a", "b", "END_USER") for i in range(5)], first=4000))
    again = build(url, tmp_path / "ds", "again", SELECTION, since="later")
    assert again["content_hash"] == build(url, tmp_path / "ds", "again-full", SELECTION)["content_hash"]


def test_since_refuses_another_selection_a_vanished_source_and_a_tampered_state(tmp_path: Path) -> None:
    log = tmp_path / "log"
    url = write_table(log, "pairs", rows(PAIRS))
    build(url, tmp_path / "ds", "first", SELECTION)
    _grow(log)
    with pytest.raises(BuildError, match="selection differs in seed"):
        build(url, tmp_path / "ds", "x", Selection(test_fraction=0.2, validation_fraction=0.1, seed=8), since="first")
    with pytest.raises(BuildError, match="no dataset 'nope'"):
        build(url, tmp_path / "ds", "x", SELECTION, since="nope")
    state = tmp_path / "ds" / "first" / "state" / "pairs.parquet"
    body = state.read_bytes()
    state.write_bytes(body[:-10] + b"0123456789")
    with pytest.raises(BuildError, match="run preflog dataset verify"):
        build(url, tmp_path / "ds", "x", SELECTION, since="first")
    state.write_bytes(body)
    next(p for p in (log / "pairs").rglob("*.parquet") if "0000000000000000000-" in p.name).unlink()
    with pytest.raises(BuildError, match="gone from the log or changed"):
        build(url, tmp_path / "ds", "x", SELECTION, since="first")
    assert not (tmp_path / "ds" / "x").exists()
