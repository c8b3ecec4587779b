"""``build --since``: only the files added since are read, and the result is the full build's, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import preflog.dataset.inputs as build_module
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
    real = build_module.log_view

    def spy(con: Any, name: str, url: str, table: str, **kw: Any) -> Any:
        read.append(list(kw["files"]))
        return real(con, name, url, table, **kw)

    monkeypatch.setattr(build_module, "log_view", spy)
    later = build(url, tmp_path / "ds", "later", SELECTION, since="first")
    monkeypatch.undo()
    old = {s["path"] for s in first["sources"]}
    assert read and not any(p in old for files in read for p in files)  # nothing the first build read
    assert len({p for files in read for p in files}) == 4  # the four new files (read by the sealed check too)
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


def _since_equals_full(log: Path, url: str, ds: Path, selection: Selection, grow: Any) -> tuple[dict, dict]:
    build(url, ds, "first", selection)
    grow()
    return build(url, ds, "later", selection, since="first"), build(url, ds, "full", selection)


def test_a_new_copy_of_an_id_is_dropped_or_wins_as_a_full_read_decides_by_path(tmp_path: Path) -> None:
    """The first copy in path order wins a full read, selected or not; an incremental build must agree."""
    from datetime import timedelta

    from .dataset_helpers import SAMPLE

    log = tmp_path / "log"
    early = SAMPLE["feedback_time"]  # 2026-11-01: before the selection's start
    late = early + timedelta(days=20)
    write_table(log, "pairs", rows([("Old copy?", "a", "b", "END_USER")], feedback_time=early), first=10)
    url = write_table(log, "pairs", rows([("Kept?", "a", "b", "END_USER")], first=1, feedback_time=late), first=20)
    selection = Selection(start="2026-11-15", test_fraction=0.0)

    def grow() -> None:  # the same pair_id 0 again, now inside the dates, in a file after the first one...
        write_table(log, "pairs", rows([("Old copy?", "a", "b", "END_USER")], feedback_time=late), first=30)
        # ... and pair 5 twice: in a file that sorts before its first copy's (another day's folder)
        copy = rows([("Moved?", "a", "b", "END_USER")], first=5, feedback_time=late)
        write_table(log, "pairs", copy, first=40)
        from preflog.schemas.registry import default_store
        from preflog.sinks.arrow import arrow_schema, to_table
        from preflog.sinks.naming import file_name
        from preflog.sinks.parquet import encode
        from preflog.sinks.storage import Storage

        schema = arrow_schema(default_store().latest("PreferencePair").raw)
        before = rows([("Moved, earlier copy?", "a", "b", "END_USER")], first=5, feedback_time=late)
        name = f"pairs/dt=2026-10-31/{file_name('preflog.pairs.v1', 0, 50, 50)}"
        Storage(url).put(name, encode(to_table(before, schema)))

    later, full = _since_equals_full(log, url, tmp_path / "ds", selection, grow)
    assert later["content_hash"] == full["content_hash"] and later["rows"] == full["rows"]
    assert full["rows"]["train"] == 2  # Kept? and the earlier copy of pair 5; pair 0's first copy is outside the dates


def test_rows_without_an_id_are_all_kept_by_an_incremental_build_as_by_a_full_one(tmp_path: Path) -> None:
    log = tmp_path / "log"
    url = write_table(log, "pairs", [r | {"pair_id": ""} for r in rows(PAIRS[8:11])])
    later, full = _since_equals_full(
        log, url, tmp_path / "ds", SELECTION,
        lambda: write_table(log, "pairs", [r | {"pair_id": ""} for r in rows(PAIRS[11:13])], first=100),
    )  # fmt: skip
    assert later["pairs_selected"] == full["pairs_selected"] == 5
    assert later["content_hash"] == full["content_hash"]


def test_since_refuses_a_build_of_another_log(tmp_path: Path) -> None:
    one = write_table(tmp_path / "one", "pairs", rows(PAIRS[:4]))
    two = write_table(tmp_path / "two", "pairs", rows(PAIRS[:4]))
    build(one, tmp_path / "ds", "first", SELECTION)
    with pytest.raises(BuildError, match="read the log at"):
        build(two, tmp_path / "ds", "x", SELECTION, since="first")


def test_a_build_reads_dates_in_utc_whatever_the_machine_s_time_zone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time
    from datetime import datetime, timezone

    url = write_table(tmp_path / "log", "pairs", rows([("Early?", "a", "b", "END_USER")],
                      feedback_time=datetime(2026, 11, 1, 3, 0, tzinfo=timezone.utc)))  # fmt: skip
    monkeypatch.setenv("TZ", "America/Los_Angeles")  # there, 2026-10-31 20:00
    time.tzset()
    try:
        m = build(url, tmp_path / "ds", "la", Selection(start="2026-11-01", test_fraction=0.0))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert m["rows"]["train"] == 1
