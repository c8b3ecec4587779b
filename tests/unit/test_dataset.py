"""Dataset builds: duplicates merged, contradictions resolved, stable splits, pinned and verifiable."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from preflog.dataset.build import BuildError, build
from preflog.dataset.catalog import builds, verify
from preflog.dataset.select import Selection

from .dataset_helpers import PAIRS, write_log


def _data(folder: Path) -> pa.Table:
    return pa.concat_tables(pq.read_table(p) for p in sorted((folder / "data").glob("*.parquet")))


def _sides(table: pa.Table) -> Counter[tuple[str, str, str]]:
    rows = table.select(["prompt", "chosen", "rejected"]).to_pylist()
    return Counter((r["prompt"], r["chosen"], r["rejected"]) for r in rows)


def test_duplicates_are_merged_with_their_votes_and_contradictions_follow_the_policy(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log", PAIRS)
    build(log, tmp_path / "ds", "majority", Selection(test_fraction=0.2))
    rows = _data(tmp_path / "ds" / "majority")
    by_sides = {(r["prompt"], r["chosen"], r["rejected"]): r for r in rows.to_pylist()}
    prime = by_sides[("Name a prime.", "7", "9")]
    assert (prime["votes"], prime["pair_id"]) == (3, "00000000-0000-4000-8000-000000000000")  # the smallest id's row
    paris = by_sides[("Capital of France?", "Paris", "Lyon")]
    assert (paris["votes"], paris["opposing_votes"], paris["weight"]) == (2, 1, pytest.approx(2 / 3))
    assert ("Capital of France?", "Lyon", "Paris") not in by_sides  # the minority side is dropped
    assert not any(p == "Tie?" for p, _, _ in by_sides)  # a tie drops both
    assert rows.num_rows == 2 + 40

    build(log, tmp_path / "ds", "drop", Selection(contradictions="drop", test_fraction=0.2))
    assert {p for p, _, _ in _sides(_data(tmp_path / "ds" / "drop"))} == {"Name a prime."} | {
        p for p, _, _, _ in PAIRS[8:]
    }
    build(log, tmp_path / "ds", "keep", Selection(contradictions="keep", test_fraction=0.2))
    kept = {(r["prompt"], r["chosen"]): r["weight"] for r in _data(tmp_path / "ds" / "keep").to_pylist()}
    assert kept[("Capital of France?", "Lyon")] == pytest.approx(1 / 3) and kept[("Tie?", "a")] == 0.5


def test_two_builds_of_the_same_input_have_the_same_content_hash_and_verify(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log", PAIRS)
    a = build(log, tmp_path / "ds", "a", Selection(seed=3))
    b = build(log, tmp_path / "ds", "b", Selection(seed=3))
    c = build(log, tmp_path / "ds", "c", Selection(seed=3, sources=("HUMAN_ANNOTATOR",)))
    assert a["content_hash"] == b["content_hash"] != c["content_hash"]
    assert sum(c["rows"].values()) == 2  # the prime (2 human votes) and Paris
    assert [m["name"] for m in builds(tmp_path / "ds")] == ["a", "b", "c"]
    assert verify(tmp_path / "ds", "a").ok
    with pytest.raises(BuildError, match="never rewritten"):
        build(log, tmp_path / "ds", "a", Selection())


def test_verify_finds_a_changed_output_a_stray_file_and_a_changed_source(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log", PAIRS)
    build(log, tmp_path / "ds", "a", Selection())
    folder = tmp_path / "ds" / "a"
    trl = folder / "trl" / "train.jsonl"
    text = trl.read_text()
    trl.write_text(text.replace('"weight":1.0', '"weight":2.0', 1))
    assert trl.read_text() != text
    (folder / "data" / "copy.parquet").write_bytes(b"x")
    source = next((tmp_path / "log").rglob("*.parquet"))
    source.write_bytes(source.read_bytes() + b"tampered")
    problems = verify(tmp_path / "ds", "a").problems
    assert any("trl/train.jsonl" in p for p in problems)
    assert any("copy.parquet: not in the manifest" in p for p in problems)
    assert any(p.startswith("source pairs/") for p in problems)


def test_a_prompt_never_straddles_splits_and_keeps_its_split_when_data_is_added(tmp_path: Path) -> None:
    small = write_log(tmp_path / "small", PAIRS[:20])
    build(small, tmp_path / "ds", "small", Selection(test_fraction=0.3, validation_fraction=0.2))
    more = write_log(tmp_path / "more", PAIRS[:20])
    write_log(tmp_path / "more", [(f"question {i}?", "yes", "no", "END_USER") for i in range(40)], first=100)
    build(more, tmp_path / "ds", "more", Selection(test_fraction=0.3, validation_fraction=0.2))
    split_of: dict[str, set[str]] = {}
    for name in ("small", "more"):
        for path in (tmp_path / "ds" / name / "data").glob("*.parquet"):
            split = path.name.split("-")[0]
            for row in pq.read_table(path, columns=["prompt", "pair_id"]).to_pylist():
                key = " ".join(row["prompt"].lower().split())  # normalised the plain way
                split_of.setdefault(key, set()).add(split)
                split_of.setdefault(row["pair_id"], set()).add(split)
    assert all(len(splits) == 1 for splits in split_of.values())  # " Question  3? " and "question 3?" too
    assert {s for splits in split_of.values() for s in splits} == {"train", "validation", "test"}


def test_the_shards_have_no_map_columns_and_the_trl_rows_carry_provenance(tmp_path: Path) -> None:
    build(write_log(tmp_path / "log", PAIRS), tmp_path / "ds", "a", Selection(test_fraction=0.0))
    schema = pq.read_schema(tmp_path / "ds" / "a" / "data" / "train-00000-of-00001.parquet")

    def maps(t: pa.DataType) -> bool:
        return pa.types.is_map(t) or any(maps(t.field(i).type) for i in range(t.num_fields))

    assert not any(maps(f.type) for f in schema)
    first = json.loads((tmp_path / "ds" / "a" / "trl" / "train.jsonl").read_text().splitlines()[0])
    assert list(first)[:3] == ["prompt", "chosen", "rejected"]
    assert {"pair_id", "request_id", "model", "source", "kind", "margin", "votes"} <= set(first)


def test_the_commands_build_list_show_and_verify_and_refuse_a_rebuild(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from preflog.cli import app

    log = write_log(tmp_path / "log", PAIRS)
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data"), "dataset"]
    built = runner.invoke(app, [*base, "build", "first", "--url", log, "--test-fraction", "0.2"])
    assert built.exit_code == 0, built.output
    assert "merged 3 exact duplicates" in built.output  # 2 more votes for the prime, 1 for Paris
    assert (tmp_path / "data" / "datasets" / "first" / "manifest.json").exists()
    listed = runner.invoke(app, [*base, "list"])
    assert listed.exit_code == 0 and "first" in listed.output
    shown = runner.invoke(app, [*base, "show", "first"], env={"COLUMNS": "160"})
    assert shown.exit_code == 0 and "content hash" in shown.output and "{" not in shown.output  # tables, not JSON
    assert "rows" in shown.output and "train " in shown.output and "test fraction" in shown.output
    raw = runner.invoke(app, [*base, "show", "first", "--json"])
    assert raw.exit_code == 0 and json.loads(raw.output)["content_hash"] in shown.output
    assert runner.invoke(app, [*base, "verify", "first"]).output.strip().endswith("OK")
    again = runner.invoke(app, [*base, "build", "first", "--url", log])
    assert again.exit_code != 0 and "never rewritten" in again.output + str(again.exception)
    unknown = runner.invoke(app, [*base, "show", "nope"])
    assert unknown.exit_code != 0 and "first" in unknown.output + str(unknown.exception)  # names what exists


def test_list_and_show_mark_a_build_an_erasure_withdrew(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from preflog.cli import app
    from preflog.privacy.erase import withdraw

    log = write_log(tmp_path / "log", PAIRS)
    base = ["--data-dir", str(tmp_path / "data"), "dataset"]
    for name in ("kept", "gone"):
        assert CliRunner().invoke(app, [*base, "build", name, "--url", log]).exit_code == 0
    withdraw(tmp_path / "data" / "datasets" / "gone", "erasure-x", "2026-12-07T00:00:00+00:00")
    listed = CliRunner().invoke(app, [*base, "list"], env={"COLUMNS": "160"}).output
    assert "withdrawn" in next(line for line in listed.splitlines() if "content hash" in line)
    (kept,) = [line.split() for line in listed.splitlines() if "kept" in line]
    (gone,) = [line.split() for line in listed.splitlines() if "gone" in line]
    assert (kept[-1], gone[-1]) == ("no", "yes")
    narrow = CliRunner().invoke(app, [*base, "list"], env={"COLUMNS": "80"}).output  # the column fits a terminal
    assert "withdrawn" in narrow and [line.split()[-1] for line in narrow.splitlines() if "gone" in line] == ["yes"]
    shown = CliRunner().invoke(app, [*base, "show", "gone"], env={"COLUMNS": "160"}).output
    assert shown.startswith("WITHDRAWN by erasure-x at 2026-12-07T00:00:00+00:00")
    assert "output files were removed" in shown
    assert "under a new name" in shown and "WITHDRAWN" not in CliRunner().invoke(app, [*base, "show", "kept"]).output
    raw = json.loads(CliRunner().invoke(app, [*base, "show", "gone", "--json"]).output)
    assert raw["withdrawn"] == {"erasure": "erasure-x", "at": "2026-12-07T00:00:00+00:00"} and raw["name"] == "gone"
    assert "withdrawn" not in json.loads(CliRunner().invoke(app, [*base, "show", "kept", "--json"]).output)
    (problem,) = verify(tmp_path / "data" / "datasets", "gone").problems
    assert "rebuild it under a new name" in problem


def test_the_card_names_the_shards_and_its_counts_and_watermark_match_the_data(tmp_path: Path) -> None:
    m = build(write_log(tmp_path / "log", PAIRS), tmp_path / "ds", "a", Selection(test_fraction=0.3))
    folder = tmp_path / "ds" / "a"
    text = (folder / "README.md").read_text()
    for shard in sorted(p.relative_to(folder).as_posix() for p in folder.glob("*/*.jsonl")):
        assert (f"path: {shard}" in text) != shard.endswith(".provenance.jsonl")  # every format's split files
    assert m["watermark"] == {"preflog.pairs.v1[0]": len(PAIRS) - 1}  # one file: offsets 0..47
    assert m["near_duplicate_prompts"] == 0  # each question is written one way here
    for path in (folder / "data").glob("*.parquet"):
        split = path.name.split("-")[0]
        by_source = Counter(pq.read_table(path, columns=["source"]).column("source").to_pylist())
        for source, n in by_source.items():
            row = next(line for line in text.splitlines() if line.startswith(f"| {source} |"))
            header = next(line for line in text.splitlines() if line.startswith("| source |"))
            column = [c.strip() for c in header.split("|")].index(split)
            assert int(row.split("|")[column]) == n


def test_diff_of_a_rebuild_with_more_data_shows_the_new_pairs_and_no_moved_split(tmp_path: Path) -> None:
    from preflog.dataset.catalog import diff

    log = write_log(tmp_path / "log", PAIRS[:20])
    build(log, tmp_path / "ds", "old", Selection(test_fraction=0.3))
    write_log(tmp_path / "log", [(f"new question {i}?", "yes", "no", "END_USER") for i in range(10)], first=100)
    build(log, tmp_path / "ds", "new", Selection(test_fraction=0.3, min_margin=0.0))
    found = diff(tmp_path / "ds", "old", "new")
    assert (found["pairs_added"], found["pairs_removed"], found["pairs_moved_split"]) == (10, 0, 0)
    assert len(found["sources_added"]) == 1 and not found["sources_removed"] and not found["sources_changed"]
    assert found["selection"] == {"min_margin": [None, 0.0]} and not found["same_content"]
    # 14 rows (the prime, Paris and 12 questions), then 24
    assert [sum(found["rows"][s][i] for s in ("train", "test")) for i in (0, 1)] == [14, 24]


def test_dataset_diff_prints_tables_and_json_with_json(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from preflog.cli import app

    log = write_log(tmp_path / "log", PAIRS[:20])
    build(log, tmp_path / "ds", "old", Selection(test_fraction=0.3))
    write_log(tmp_path / "log", [(f"new question {i}?", "yes", "no", "END_USER") for i in range(10)], first=100)
    build(log, tmp_path / "ds", "new", Selection(test_fraction=0.3, min_margin=0.0))
    base = ["dataset", "diff", "old", "new", "--root", str(tmp_path / "ds")]
    shown = CliRunner().invoke(app, base, env={"COLUMNS": "160"})
    assert shown.exit_code == 0, shown.output
    lines = [" ".join(line.split()) for line in shown.output.splitlines()]
    assert "old -> new: different content" in lines and "{" not in shown.output  # tables, not JSON
    assert "added 10" in lines and "removed 0" in lines and "moved split 0" in lines
    assert "min margin - 0.0" in lines  # the selection that changed: not set, then 0.0
    assert any(line.startswith("sources added: 1") for line in lines)
    raw = CliRunner().invoke(app, [*base, "--json"])
    assert raw.exit_code == 0 and json.loads(raw.output)["pairs_added"] == 10


def test_a_cap_per_user_keeps_the_seeded_hash_s_first_rows_of_a_heavy_user(tmp_path: Path) -> None:
    import hashlib

    from .dataset_helpers import SAMPLE

    log = tmp_path / "log"
    heavy = [(f"heavy {i}?", "yes", "no", "END_USER") for i in range(30)]
    write_log(log, heavy, context={**SAMPLE["context"], "user_id": "heavy"})
    url = write_log(log, [(f"light {i}?", "yes", "no", "END_USER") for i in range(5)], first=100,
                    context={**SAMPLE["context"], "user_id": "light"})  # fmt: skip
    for seed in (1, 2):
        build(url, tmp_path / "ds", f"s{seed}", Selection(seed=seed, caps=(("user_id", 10),)))
        kept = _data(tmp_path / "ds" / f"s{seed}").select(["pair_id", "user_id"]).to_pylist()
        assert Counter(r["user_id"] for r in kept) == {"heavy": 10, "light": 5}
        heavy_ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(30)]
        first_ten = sorted(heavy_ids, key=lambda p: (hashlib.md5(f"{seed}:{p}".encode()).hexdigest(), p))[:10]
        assert sorted(r["pair_id"] for r in kept if r["user_id"] == "heavy") == sorted(first_ten)
    with pytest.raises(ValueError, match="cap one of"):
        Selection(caps=(("prompt", 3),))


def test_the_watermark_keeps_each_incarnation_of_a_topic_apart() -> None:
    from preflog.dataset.card import watermark
    from preflog.sinks.naming import file_name

    files = [
        f"pairs/dt=2026-11-01/{file_name('preflog.pairs.v1', 0, 0, 499)}",
        f"pairs/dt=2026-11-02/{file_name('preflog.pairs.v1', 0, 0, 88, incarnation=1)}",  # the topic began again
        "pairs/dt=2026-11-02/stray copy.parquet",
    ]
    assert watermark(files) == {"preflog.pairs.v1+i0001[0]": 88, "preflog.pairs.v1[0]": 499}
